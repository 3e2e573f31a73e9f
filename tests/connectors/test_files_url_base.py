"""A files source can map its root to a public URL, so results link to the company's drive."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.files import document_url
from connectors.files_config import FilesSourceConfig


def test_url_base_replaces_the_servers_file_path() -> None:
    path = Path("/srv/share/hr/Leave policy (2025).pdf")
    assert document_url(None, path, "hr/Leave policy (2025).pdf") == path.as_uri()
    assert (
        document_url("https://drive.example.com/company/", path, "hr/Leave policy (2025).pdf")
        == "https://drive.example.com/company/hr/Leave%20policy%20%282025%29.pdf"
    )


@pytest.mark.parametrize(
    "bad", ["drive.example.com/company/", "https://drive.example.com/company", "file:///srv/"]
)
def test_url_base_must_be_an_http_url_ending_in_a_slash(bad: str) -> None:
    with pytest.raises(ValidationError, match="url_base"):
        FilesSourceConfig(name="share", kind="files", root="/srv/share", url_base=bad)
    ok = FilesSourceConfig(
        name="share", kind="files", root="/srv/share", url_base="https://drive.example.com/c/"
    )
    assert ok.url_base == "https://drive.example.com/c/"
