"""The application layer: one function per use case, called by every door.

A door (MCP in ``server/mcp``, admin REST in ``server/http``, the ``kb`` CLI) parses its
input, identifies the caller, calls one function here and renders the answer. The use
case does the rest, always in the same order: authorize (an :class:`AccessFilter` for
reads, an :class:`~policies.capability.AdminCaller` for administration) → run the service
→ audit (in the change's own transaction; see :mod:`server.audit.recorder`).

=====================  ============================================  =====================
module                 use cases                                     doors
=====================  ============================================  =====================
``reading``            search, fetch, list_sources, documents,       MCP tools/resources/
                       resources, prompts, completion                prompts, ``kb search``
``keys``               create, list, revoke, rotate                  REST, ``kb keys``
``sources``            add, remove, list, get, sync, jobs            REST, ``kb sources``,
                                                                     ``kb sync``, ``kb jobs``
``policy_admin``       list, add, remove, import, export, lint,      REST, ``kb policy``
                       test, explain, who-can, diff
``audit_log``          read (tail), export                           REST, ``kb audit``
``operations``         db downgrade, token mint                      ``kb db``, ``kb token``
=====================  ============================================  =====================

Administration needs the capability: :func:`server.usecases.admin.admin_of` mints it for a
caller (REST, a token's caller) and :func:`server.usecases.admin.cli_operator` is the one
identity of a CLI operator (``user:cli:<os user>`` holding ``role:admin``).
"""
