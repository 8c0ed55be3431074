"""MkDocs hook: publish the benchmark plots of ``results/`` with the site.

The PNGs stay where the benchmarks write them (``results/*.png``, committed with their JSON
records); ``docs/benchmarks.md`` links them as ``results/NAME.png`` and this hook adds them to the
site's files, so ``mkdocs build --strict`` checks every link and no copy of a plot goes stale.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]  # the repository


def on_files(files: Files, config) -> Files:
    for png in sorted((ROOT / "results").glob("*.png")):
        files.append(
            File(
                f"results/{png.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
