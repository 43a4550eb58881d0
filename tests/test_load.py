"""Several browser sessions against one `streamlit run` server, classifying and
comparing repeatedly: no errors, the same answers as a single session, and server memory
that stops growing (SKIN_LOAD_ROUNDS=10 for a longer run). Prints sessions, requests,
latency percentiles and peak RSS (the figures in BENCHMARKS.md); asserts correctness
only, never times."""

import os
import re
import time

import numpy as np

from tests.conftest import write_image
from tests.test_browser import app_url, browser, memory_mib  # noqa: F401  (shared fixtures)

SESSIONS = 3
ROUNDS = int(os.environ.get("SKIN_LOAD_ROUNDS", 3))  # more for the memory figures
ROUND_TO_ROUND_MIB = 400
# The app's own error boxes and Streamlit's exception box: any of them fails the test
# at once instead of after the long wait for an answer that will not come.
ERROR = ('[data-testid="stException"], '
         '[data-testid="stAlert"]:has-text("is unavailable"), '
         '[data-testid="stAlert"]:has-text("cannot be used")')
ANSWER = re.compile(r"Ranked first by the model: (.+?\(\w+\)), (\d+)%")
DECISION = re.compile(r"^(Refer|Inconclusive|Low risk|No referral decision)\.", re.MULTILINE)


def answer(body: str) -> tuple:
    """The decision and the class ranked first, as the Classify page shows them."""
    ranked, decision = ANSWER.search(body), DECISION.search(body)
    assert ranked and decision, body[:500]
    return (decision.group(1), *ranked.groups())


def test_concurrent_sessions_agree_and_memory_stays_bounded(app_url, browser, tmp_path):  # noqa: F811
    image = write_image(tmp_path / "lesion.jpg", (150, 70, 60), (200, 150))
    pages = [browser.new_page() for _ in range(SESSIONS)]
    latencies, memory, answers, requests = [], [], set(), 0
    for _ in range(ROUNDS):
        for view, ready in (("", "Grad-CAM for"), ("compare", "models rank")):
            started = {}
            for page in pages:  # all sessions ask at once ...
                page.goto(f"{app_url}/{view}")
                page.locator('input[type="file"]').first.wait_for(state="attached", timeout=60_000)
                page.locator('input[type="file"]').first.set_input_files(str(image))
                started[page] = time.monotonic()
            for page in pages:  # ... then each answer (or the first error) is awaited
                page.get_by_text(ready).or_(page.locator(ERROR)).first.wait_for(timeout=180_000)
                latencies.append(time.monotonic() - started[page])
                body = page.inner_text("body")
                assert page.locator(ERROR).count() == 0, page.locator(ERROR).all_inner_texts()
                if view == "":
                    answers.add(answer(body))
                requests += 1
        memory.append(memory_mib(app_url.server_pid))
    assert len(answers) == 1, f"sessions disagree: {answers}"
    # After the first round has loaded everything, memory must not keep growing. Between
    # rounds RSS still moves by up to ~300 MiB as malloc arenas of Streamlit's new script
    # threads fill (measured, 5 rounds: 1921, 2124, 2174, 2165, 2222 MiB; one CI run went
    # 2198 -> 2489 at round 3): a leak shows as steady growth over SKIN_LOAD_ROUNDS=10.
    assert memory[-1]["VmRSS"] <= memory[1]["VmRSS"] + ROUND_TO_ROUND_MIB, memory
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"\n{SESSIONS} sessions x {ROUNDS} rounds: {requests} requests, 0 errors, page "
          f"round trip p50 {p50:.1f} s p95 {p95:.1f} s, server RSS per round "
          f"{[round(m['VmRSS']) for m in memory]} MiB, peak {memory[-1]['VmHWM']:.0f} MiB")
