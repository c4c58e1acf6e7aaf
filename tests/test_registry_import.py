"""The registry is imported by the Snakefile at parse time and by every cluster job: it must stay light."""
import json
import os
import subprocess
import sys

from conftest import REPO

HEAVY = ("scipy", "librosa", "essentia", "madmom", "torch", "tensorflow", "onnxruntime", "llama_cpp", "mutagen",
         "soundfile", "numba")

_PROBE = """
import json, sys, time
t = time.perf_counter()
import mirflow.registry, mirflow.params
elapsed = time.perf_counter() - t
print(json.dumps({"elapsed": elapsed, "modules": sorted(sys.modules), "families": len(mirflow.registry.FAMILIES)}))
"""


def test_registry_imports_no_heavy_library_and_fast():
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout)
    loaded = {m.split(".")[0] for m in probe["modules"]}
    assert not loaded & set(HEAVY), f"registry import pulls in {sorted(loaded & set(HEAVY))}"
    assert probe["families"] >= 18
    # Generous: measured 0.07 s (numpy included) on the 2-core dev machine; the bound only catches a heavy import.
    assert probe["elapsed"] < 1.5, f"registry import took {probe['elapsed']:.2f} s"
