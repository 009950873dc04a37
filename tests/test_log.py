"""Job logging: what a job writes goes to its log file, not to the console."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT

# transformers sets up its stream handler when imported, as the workflow scripts do before setup_logging.
JOB = textwrap.dedent("""
    import logging, sys
    from transformers.utils import logging as hf_logging
    hf_logging.get_logger("transformers.modeling_utils").warning("LOAD REPORT from a library")
    from kdbudget.log import setup_logging
    setup_logging(sys.argv[1])
    hf_logging.get_logger("transformers.modeling_utils").warning("LOAD REPORT after setup")
    logging.getLogger("kdbudget.job").info("our own line")
    print("written to stderr", file=sys.stderr)
""")


def test_library_chatter_after_setup_goes_to_the_log_not_the_console(tmp_path):
    log = tmp_path / "job.log"
    done = subprocess.run([sys.executable, "-c", JOB, str(log)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=True)
    written = log.read_text()
    assert "LOAD REPORT after setup" in written
    assert "our own line" in written and "written to stderr" in written
    assert "LOAD REPORT after setup" not in done.stderr
    assert "LOAD REPORT from a library" in done.stderr  # before setup_logging the console is the place
