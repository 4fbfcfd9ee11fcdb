"""Make the README's two pictures from a finished validation run.

    python docs/make_screenshots.py --report-dir reports

writes ``docs/report.png`` (the top of ``validation.html`` as headless Chromium
renders it, from Debian's ``chromium`` package) and ``docs/explain-trill.png``
(``python -m pmt_core explain`` on a synthesized trill from the run's test split,
with the run's S1+S2 checkpoint).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

DOCS = Path(__file__).resolve().parent
MAX_BYTES = 400_000


def screenshot(html: Path, out: Path, width: int = 1440, height: int = 1500) -> Path:
    """Render ``html`` with headless Chromium (no network) and save a small PNG."""
    with tempfile.TemporaryDirectory() as profile, tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.png"
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={raw}",
             f"--window-size={width},{height}", "--hide-scrollbars", html.resolve().as_uri()],
            check=True, capture_output=True, timeout=120)
        image = Image.open(raw).convert("RGB")
    # Halve the width and use a 64-colour palette: text stays legible, the file small.
    image = image.resize((image.width * 2 // 3, image.height * 2 // 3), Image.LANCZOS)
    for colours in (128, 64, 32):
        image.quantize(colours).save(out, optimize=True)
        if out.stat().st_size < MAX_BYTES:
            break
    return out


def trill_wav(path: Path, seed: int = 0) -> Path:
    """Write the first test-split trill of the ci-profile synthetic data set."""
    from pmt_core.data.split import assign_split
    from pmt_core.data.synth import synthesize, synthetic_manifest
    from pmt_core.profiles import CI_CLASS_SIZES

    manifest = assign_split(synthetic_manifest(CI_CLASS_SIZES, seed=seed), seed)
    row = manifest[(manifest.technique == "trill") & (manifest.subset == "test")].iloc[0]
    print(f"trill: {row.instrument}, f0 {row.f0_hz:.1f} Hz, rate {row.modulation_rate_hz:.2f} "
          f"Hz, depth {row.modulation_depth:g} cents")
    sf.write(path, np.asarray(synthesize(row), dtype=np.float32), 44100)
    return path


def main() -> int:
    """Write both pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-dir", type=Path, default=Path("reports"))
    args = parser.parse_args()
    print(screenshot(args.report_dir / "validation.html", DOCS / "report.png"))
    with tempfile.TemporaryDirectory() as tmp:
        wav = trill_wav(Path(tmp) / "trill.wav")
        subprocess.run([sys.executable, "-m", "pmt_core", "explain", str(wav), "--checkpoint",
                        str(args.report_dir / "models" / "s1s2.pt"), "--out",
                        str(DOCS / "explain-trill.png")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
