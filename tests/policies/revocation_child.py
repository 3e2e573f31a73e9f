"""A second server process for the revocation test: a runtime that keeps its policy current.

Run as ``python -m tests.policies.revocation_child DSN HOME DOC PRINCIPAL``. Prints one JSON
line when ready and one per policy version it activates, with whether a request by
PRINCIPAL for DOC (SQL predicate + re-check) still returns the document at that moment.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from core.identity import Caller
from server.runtime import open_runtime
from server.settings import Settings


async def main(dsn: str, home: str, doc: str, principal: str) -> None:
    settings = Settings(home=home, database={"url": dsn}, auth={"mode": "dev"})
    caller = Caller.of(principal)
    async with open_runtime(settings, load_model=False, run_migrations=False) as rt:
        seen = -1
        while True:
            version = rt.policies.version
            if version != seen:
                at = time.time()
                seen = version
                readable = await rt.policy_store.is_readable(rt.policies.filter_for(caller), doc)
                print(json.dumps({"version": version, "at": at, "readable": readable}), flush=True)
            await asyncio.sleep(0.0005)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
