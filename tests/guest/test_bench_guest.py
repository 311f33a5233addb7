"""scripts/bench.sh's UML row: a guest's dd to a port file next to its own
dd | dd, both printed with a number and a ratio.  Only that section, and
small (16 MiB), so the boot is most of it; no assertion on any number.
(The other rows: tests/integration/test_bench.py.)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                "integration"))

from test_bench import BenchCase, run_bench, table  # noqa: E402


class BenchUml(BenchCase):
    def test_uml_row(self):
        out, stale = run_bench("uml", {"BENCH_UML_BYTES": "16M"},
                               timeout=240)
        self.assertEqual(stale, [], "bench.sh left mounts behind")
        self.check_rows(out, ["UML guest dd -> port file"])
        m = table(out)["UML guest dd -> port file"][0]
        self.assertEqual(m.group("ceiling"), "in-guest pipe, dd | dd")
        self.assertIn("count=256 ", out)

if __name__ == "__main__":
    unittest.main()
