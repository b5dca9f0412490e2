"""Every script of examples/python runs against the bundled model and exits 0. The scripts assert their own
claims: the seed guide's workarounds (warm-up calls, single-token decode loops, use_cache=False) give the same
results as the plain calls, and a batch gives what its prompts give alone."""

import glob
import os
import subprocess
import sys
import tempfile
import unittest

import support

EXAMPLES = sorted(glob.glob(os.path.join(support.SOURCE_DIR, "examples", "python", "*.py")))


class Examples(unittest.TestCase):
    def test_every_example_runs(self):
        self.assertTrue(os.path.isdir(support.BUNDLED), f"{support.BUNDLED}: the bundled model is missing")
        self.assertGreater(len(EXAMPLES), 5)
        with tempfile.TemporaryDirectory() as tmp:
            for path in EXAMPLES:
                name = os.path.basename(path)
                args = []
                if name == "quantize.py":  # the bundled model is quantized already: quantize the BF16 one
                    args = [os.path.join(support.SHARED_DIR, "models", "tiny-glm4-moe-lite"),
                            os.path.join(tmp, "quantized"), "64"]
                with self.subTest(example=name):
                    r = subprocess.run([sys.executable, path, *args], capture_output=True, text=True,
                                       timeout=300)
                    self.assertEqual(r.returncode, 0, f"{name}:\n{r.stdout}\n{r.stderr}")
                    self.assertTrue(r.stdout.strip(), f"{name} printed nothing")


if __name__ == "__main__":
    unittest.main()
