"""Model files: the manifest (:mod:`.manifest`), their verification (:mod:`.verify`), their
download (:mod:`.download`) and a command line (:mod:`.cli`, ``python -m callagent.modelfiles``).

``models/README.md`` documents the manifest format and the command line; docs/models.md why
the models come from pinned packages.
"""

from callagent.modelfiles.download import download
from callagent.modelfiles.manifest import (
    ALL_PROFILES,
    KINDS,
    FileSpec,
    Manifest,
    ManifestError,
    ModelFileError,
    ModelProfile,
    ModelSpec,
    PackageMember,
    load_manifest,
)
from callagent.modelfiles.verify import resolve_profile, verify_profiles
from callagent.modelfiles.voices import Voice, VoiceCatalog, installed_voices

__all__ = [
    "ALL_PROFILES",
    "KINDS",
    "FileSpec",
    "Manifest",
    "ManifestError",
    "ModelFileError",
    "ModelProfile",
    "ModelSpec",
    "PackageMember",
    "Voice",
    "VoiceCatalog",
    "download",
    "installed_voices",
    "load_manifest",
    "resolve_profile",
    "verify_profiles",
]
