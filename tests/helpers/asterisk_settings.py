"""Settings for the tests of Asterisk's rendered configuration: a complete, valid environment
(:data:`BASE`) with two DIDs, two transfer targets and a trunk, and the configuration rendered
from it with any variable changed."""

from __future__ import annotations

from callagent.settings import Settings, load_settings
from callagent.telephony.asterisk.config import render_asterisk_config

SECRET = "s3cret-0123456789abcdef"
BASE = {
    "CALLAGENT_AMI_SECRET": SECRET,
    "CALLAGENT_TRUNK_HOST": "sip.example.net",
    "CALLAGENT_TRUNK_USERNAME": "u4930",
    "CALLAGENT_TRUNK_PASSWORD": "trunk!pass#1",
    "CALLAGENT_DIDS": "+4930123456, 4930999",
    "CALLAGENT_TRANSFER_TARGETS": "sales=+4930111, support=0301234",
}


def settings_for(**env: str) -> Settings:
    return load_settings(environ={**BASE, **env})


def render(**env: str) -> dict[str, str]:
    settings = settings_for(**env)
    return render_asterisk_config(
        settings.asterisk, audiosocket_port=settings.network.audiosocket_port
    )
