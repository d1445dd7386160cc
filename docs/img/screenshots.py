"""Retake the report screenshots of docs/report.md from a report.html of `make report`.

Needs Chromium (Debian package `chromium`) and Playwright (`pip install playwright`, only
its driver is used: the system Chromium is launched), neither of which the pipeline needs:

    python docs/img/screenshots.py report.html docs/img
"""
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def open_entry(page, url: str, path: list[str], file_name: str) -> None:
    """Open the report, click through the menu ``path`` and show ``file_name``."""
    page.goto(url)
    page.wait_for_timeout(2500)
    for item in path:
        page.get_by_text(item, exact=True).first.click()
        page.wait_for_timeout(600)
    page.locator("tr", has_text=file_name).first.locator("a[iconname='eye']").click()
    page.wait_for_timeout(2500)


def main(report: str, out_dir: str) -> None:
    url = Path(report).resolve().as_uri()
    out = Path(out_dir)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        open_entry(page, url, ["demo-mainland", "kmeans-dyn_smoothed"], "kmeans-dyn_smoothed_map.png")
        page.screenshot(path=str(out / "report.png"))
        open_entry(page, url, ["demo-arctic", "kmeans-dyn_smoothed"], "kmeans-dyn_smoothed_clusters.png")
        page.screenshot(path=str(out / "report-series.png"))
        open_entry(page, url, ["Summary"], "summary.html")
        page.screenshot(path=str(out / "report-summary.png"))
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
