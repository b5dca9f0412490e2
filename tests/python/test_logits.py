"""model(input_ids) against transformers (float32 logits at every position, ../shared references) and against the
engine's own decode path; every input shape; no warm-up needed."""

import os
import unittest

import numpy as np

import mmfp4
import support

TOL = 1e-4  # max abs error / max abs reference, per position: the CPU parity bar of tests/model


class LogitsMatchTransformers(unittest.TestCase):
    def test_every_reference_folder(self):
        for folder in support.REFERENCE_DIRS:
            with self.subTest(folder=os.path.relpath(folder, support.SHARED_DIR)):
                cases = support.load_reference(folder)
                m = support.model(folder)
                for i, c in enumerate(cases):
                    got = m(c["input_ids"])
                    self.assertEqual(got.shape, (1, len(c["input_ids"]), m.vocab_size))
                    self.assertEqual(got.dtype, np.float32)
                    self.assertLess(support.max_row_rel_err(got[0], c["logits"]), TOL, f"case {i}")
                # All cases at once (a ragged batch): the same logits as one by one, bit for bit on the CPU (the
                # CUDA backend's kernels depend on the batch size, so there within the tolerance).
                batch = m([c["input_ids"] for c in cases])
                for i, c in enumerate(cases):
                    n = len(c["input_ids"])
                    if support.DEVICE == "cpu":
                        np.testing.assert_array_equal(batch[i, :n], m(c["input_ids"])[0])
                    else:
                        self.assertLess(support.max_row_rel_err(batch[i, :n], m(c["input_ids"])[0]), TOL)
                    self.assertFalse(batch[i, n:].any(), "padding positions hold 0")

    def test_greedy_ids_equal_transformers_with_and_without_cache(self):
        for folder in (support.QWEN, support.GLM):
            m = support.model(folder)
            for i, c in enumerate(support.load_reference(folder)):
                n = len(c["greedy_ids"])
                for use_cache in (True, False):
                    out = m.generate(c["input_ids"], max_new_tokens=n, ignore_eos=True, use_cache=use_cache)
                    self.assertEqual(out[len(c["input_ids"]):].tolist(), c["greedy_ids"],
                                     f"{folder} case {i} use_cache={use_cache}")


class LogitsEqualTheEnginesOtherPaths(unittest.TestCase):
    def test_each_position_equals_a_fresh_prefix(self):
        # Logits at position t of a long sequence = the last logits of its prefix [0, t] run alone.
        m = support.model(support.QWEN)
        ids = support.load_reference(support.QWEN)[1]["input_ids"]
        full = m(ids)[0]
        for t in range(len(ids)):
            self.assertLess(support.max_row_rel_err(full[t], m(ids[:t + 1])[0, -1]), 1e-5, f"position {t}")

    def test_argmax_of_logits_is_the_greedy_token(self):
        # The single-token decode loop over model(...) (no cache) gives generate()'s greedy ids.
        m = support.model(support.GLM)
        ids = list(support.load_reference(support.GLM)[0]["input_ids"])
        expected = m.generate(ids, max_new_tokens=8, ignore_eos=True)[len(ids):].tolist()
        loop = []
        for _ in range(8):
            loop.append(int(np.argmax(m(ids + loop)[0, -1])))
        self.assertEqual(loop, expected)


class InputShapes(unittest.TestCase):
    def setUp(self):
        self.m = support.model(support.QWEN)
        self.a = [484, 4464, 3843, 80, 731, 90]
        self.b = [1571, 2843, 201]

    def test_list_array_and_2d_agree(self):
        ref = self.m(self.a)
        for form in (np.array(self.a), np.array(self.a, dtype=np.int32), np.array(self.a, dtype=np.uint16),
                     tuple(self.a)):
            np.testing.assert_array_equal(self.m(form), ref)
        two = self.m(np.array([self.a, self.a]))
        self.assertEqual(two.shape, (2, len(self.a), self.m.vocab_size))
        np.testing.assert_array_equal(two[1], ref[0])

    def test_ragged_list_is_right_padded_with_zeros(self):
        out = self.m([self.a, self.b])
        self.assertEqual(out.shape, (2, len(self.a), self.m.vocab_size))
        np.testing.assert_array_equal(out[1, :3], self.m(self.b)[0])
        self.assertFalse(out[1, 3:].any())

    def test_attention_mask_left_padding(self):
        ids = np.array([self.a, [0, 0, 0] + self.b])
        mask = np.array([[1] * 6, [0, 0, 0, 1, 1, 1]])
        out = self.m(ids, attention_mask=mask)
        np.testing.assert_array_equal(out[1, 3:], self.m(self.b)[0])
        self.assertFalse(out[1, :3].any())
        with self.assertRaisesRegex(ValueError, "one run of 1s"):
            self.m(ids, attention_mask=np.array([[1] * 6, [1, 0, 1, 1, 1, 1]]))

    def test_full_context_in_one_call(self):
        # Longer than a step's token budget (256) and than any earlier call: still one call, no warm-up.
        m = support.model(support.QWEN, max_context=1024)
        ids = (self.a * 200)[:1024]
        out = m(ids)
        self.assertEqual(out.shape, (1, 1024, m.vocab_size))
        self.assertTrue(np.isfinite(out).all())
        self.assertLess(support.max_row_rel_err(out[0, :6], m(self.a)[0]), 1e-5)


if __name__ == "__main__":
    unittest.main()
