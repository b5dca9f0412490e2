"""Module-level calls: model.config, set_verbose, check_finite (NaN/Inf tracing, also on a loaded model),
quantize."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import warnings

import numpy as np

import mmfp4
import support


def corrupted_copy(src, dst, tensor, value):
    """A copy of model folder `src` in which the first element of F16 `tensor` is `value` (inf, nan)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("reference"))
    path = os.path.join(dst, "model.safetensors")
    header, base = support.safetensors_header(path)
    t = header[tensor]
    assert t["dtype"] == "F16", t
    with open(path, "r+b") as f:
        f.seek(base + t["data_offsets"][0])
        f.write(np.array([value], dtype=np.float16).tobytes())


class ConfigView(unittest.TestCase):
    def test_fields_and_memory_plan(self):
        m = support.model(support.GLM)
        c = m.config
        self.assertEqual((c.model_type, c.vocab_size, c.num_hidden_layers, c.kv_lora_rank),
                         ("glm4_moe_lite", 8192, 6, 128))
        self.assertEqual(c.mlp_layer_types, ["dense"] + ["sparse"] * 5)
        self.assertEqual(c["n_routed_experts"], 16)
        self.assertIn("KV cache", c.memory_plan)
        self.assertEqual(c.max_context, m.max_context)
        self.assertGreater(c.weight_bytes, 0)
        self.assertIn("memory_plan", c.to_dict())
        self.assertIn("glm4_moe_lite", repr(c))

    def test_read_only_but_seed_switches_are_harmless(self):
        c = support.model(support.GLM).config
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            c.enable_memory_pooling = True
        self.assertIn("memory is always pooled", str(w[0].message))
        self.assertTrue(c.enable_memory_pooling)
        with self.assertRaisesRegex(AttributeError, "read-only.*mmfp4.load"):
            c.max_context = 8
        with self.assertRaisesRegex(AttributeError, "has no 'nonexistent'"):
            c.nonexistent


class Verbose(unittest.TestCase):
    def run_script(self, body):
        return subprocess.run([sys.executable, "-c", "import mmfp4, sys\n" + body, support.QWEN],
                              capture_output=True, text=True, check=True).stderr

    def test_verbose_logs_each_op_and_can_be_turned_off(self):
        err = self.run_script("mmfp4.set_verbose(True)\nm = mmfp4.load(sys.argv[1], device='cpu')\nm([1, 2, 3])")
        self.assertIn("mmfp4 debug:", err)
        self.assertIn("layer 0", err)
        err = self.run_script("mmfp4.set_verbose(True)\nmmfp4.set_verbose(False)\n"
                              "m = mmfp4.load(sys.argv[1], device='cpu')\nm([1, 2, 3])")
        self.assertNotIn("mmfp4 debug:", err)


class CheckFinite(unittest.TestCase):
    """The seed guide's `torch.isnan(output).any()` check, and the engine's tracing that names where it started."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.bad = os.path.join(cls.tmp.name, "bad")
        corrupted_copy(support.QWEN, cls.bad, "model.layers.2.mlp.up_proj.weight.scales", np.inf)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def tearDown(self):
        mmfp4.check_finite(False)

    def test_nan_shows_in_logits_then_tracing_names_the_op(self):
        m = mmfp4.load(self.bad, device="cpu")
        self.assertTrue(np.isnan(m([1, 2, 3])).any())
        mmfp4.check_finite(True)  # applies to the loaded model from its next step
        with self.assertRaisesRegex(mmfp4.Error, "non-finite value .* after layer 2 op"):
            m([1, 2, 3])
        with self.assertRaisesRegex(mmfp4.Error, "non-finite value .* after layer 2 op"):
            m.generate([1, 2, 3], max_new_tokens=2)
        mmfp4.check_finite(False)
        self.assertTrue(np.isnan(m([1, 2, 3])).any())

    def test_models_loaded_afterwards_check_from_their_warm_up(self):
        mmfp4.check_finite(True)
        with self.assertRaisesRegex(mmfp4.Error, "non-finite value .* after layer 2 op"):
            mmfp4.load(self.bad, device="cpu")
        good = mmfp4.load(support.QWEN, device="cpu")
        np.testing.assert_array_equal(good([1, 2, 3]), support.model(support.QWEN)([1, 2, 3]))


class Quantize(unittest.TestCase):
    def test_quantized_models_match_the_references_of_metal_marlins_writer(self):
        with tempfile.TemporaryDirectory() as d:
            for src, hadamard, twin in (("tiny-qwen3", None, support.QWEN), ("tiny-glm4-moe-lite", 64, support.GLM)):
                calls = []
                dst = os.path.join(d, src)
                report = mmfp4.quantize(os.path.join(support.SHARED_DIR, "models", src), dst, group_size=128,
                                        hadamard=hadamard, progress=lambda *a: calls.append(a))
                self.assertGreater(report["quantized"], 0)
                self.assertEqual(calls[-1][0], calls[-1][1])
                m = mmfp4.load(dst, device="cpu")
                for c in support.load_reference(twin):
                    self.assertLess(support.max_row_rel_err(m(c["input_ids"])[0], c["logits"]), 1e-4)

    def test_errors(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(mmfp4.Error):
                mmfp4.quantize(os.path.join(d, "missing"), os.path.join(d, "out"))
            with self.assertRaisesRegex(mmfp4.Error, "group size 7"):
                mmfp4.quantize(os.path.join(support.SHARED_DIR, "models", "tiny-qwen3"), os.path.join(d, "out"),
                               group_size=7)
            with self.assertRaisesRegex(mmfp4.Error, "already a quantized checkpoint"):
                mmfp4.quantize(support.QWEN, os.path.join(d, "out2"))

            def stop(*_):
                raise KeyboardInterrupt
            with self.assertRaises(KeyboardInterrupt):  # the callback's exception ends the quantizer
                mmfp4.quantize(os.path.join(support.SHARED_DIR, "models", "tiny-qwen3"), os.path.join(d, "out3"),
                               progress=stop)


if __name__ == "__main__":
    unittest.main()
