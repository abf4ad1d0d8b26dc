"""Reference log-mel and MFCC for tests/librosa_reference.rs, computed with librosa 0.11.

Usage: python librosa_reference.py CONFIG.json DIR
CONFIG.json is the Rust FeatureConfig (serde JSON); DIR holds rec0.f32, rec1.f32, ... (raw
little-endian float32 samples). Writes logmel{i}.f64 and mfcc{i}.f64 (row-major float64,
shape (n_mels, t) and (n_mfcc, t)) next to them. Every parameter is passed explicitly.
"""
import json
import pathlib
import sys

try:
    import librosa
    import numpy as np
except ImportError as e:  # the Rust test turns this message into its failure
    sys.exit(f"librosa is missing ({e}): pip install -r xtask/python-requirements.txt")

cfg = json.loads(pathlib.Path(sys.argv[1]).read_text())
folder = pathlib.Path(sys.argv[2])
i = 0
while (folder / f"rec{i}.f32").exists():
    y = np.fromfile(folder / f"rec{i}.f32", dtype="<f4")
    S = librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=cfg["sample_rate"],
        n_fft=cfg["n_fft"],
        hop_length=cfg["hop_length"],
        win_length=cfg["win_length"],
        window="hann",
        center=cfg["center"],
        pad_mode=cfg["pad_mode"],
        power=cfg["power"],
        n_mels=cfg["n_mels"],
        fmin=cfg["fmin"],
        fmax=cfg["fmax"],
        htk=cfg["mel_scale"] == "htk",
        norm="slaney" if cfg["mel_norm"] == "slaney" else None,
        dtype=np.float64,
    )
    db = librosa.power_to_db(S, ref=cfg["reference"], amin=cfg["amin"], top_db=cfg["top_db"])
    mfcc = librosa.feature.mfcc(S=db, n_mfcc=cfg["n_mfcc"], dct_type=2, norm="ortho", lifter=0)
    db.astype("<f8").tofile(folder / f"logmel{i}.f64")
    mfcc.astype("<f8").tofile(folder / f"mfcc{i}.f64")
    i += 1
print(f"librosa {librosa.__version__}: {i} recordings")
