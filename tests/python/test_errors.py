"""Bad input raises a Python exception with the engine's message, on every path; the interpreter never crashes
and the model keeps working."""

import os
import tempfile
import unittest

import numpy as np

import mmfp4
import support


class BadFolders(unittest.TestCase):
    def test_missing_folder(self):
        with self.assertRaisesRegex(mmfp4.Error, "/no/such/model: not a folder"):
            mmfp4.load("/no/such/model")

    def test_folder_without_a_model(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(mmfp4.Error, "no config.json"):
                mmfp4.load(d)

    def test_bad_options(self):
        with self.assertRaisesRegex(mmfp4.Error, "max_batch"):
            mmfp4.load(support.QWEN, device="cpu", max_batch=0)
        with self.assertRaisesRegex(mmfp4.Error, "threads must not be negative"):
            mmfp4.load(support.QWEN, device="cpu", threads=-2)
        with self.assertRaises(mmfp4.Error):
            mmfp4.load(support.QWEN, device="tpu")

    def test_error_is_a_runtime_error(self):
        self.assertTrue(issubclass(mmfp4.Error, RuntimeError))
        self.assertTrue(issubclass(mmfp4.QueueFull, mmfp4.Error))


class BadRequests(unittest.TestCase):
    def setUp(self):
        self.m = support.model(support.QWEN, max_context=64)

    def each_path(self, ids, pattern, **options):
        """model(ids) (for a logits pattern) and generate/stream, with and without the cache."""
        for use_cache in (True, False):
            with self.assertRaisesRegex(mmfp4.Error, pattern):
                self.m.generate(ids, use_cache=use_cache, **options)
            with self.assertRaisesRegex(mmfp4.Error, pattern):
                list(self.m.stream(ids, use_cache=use_cache, **options))

    def test_out_of_vocabulary_ids(self):
        with self.assertRaisesRegex(mmfp4.Error, r"token 2 has id 8192, outside the vocabulary \[0, 8192\)"):
            self.m([1, 2, 8192])
        with self.assertRaisesRegex(mmfp4.Error, r"sequence 1 token 0 has id -5"):
            self.m([[1, 2], [-5]])
        self.each_path([1, 2, 8192], r"prompt token 2 has id 8192, outside the vocabulary \[0, 8192\)",
                       max_new_tokens=4)
        with self.assertRaisesRegex(ValueError, "not even a 32-bit integer"):
            self.m(np.array([1, 2**40]))

    def test_too_long_prompt(self):
        with self.assertRaisesRegex(mmfp4.Error, "sequence 0 has 65 tokens, more than the context of 64"):
            self.m(list(range(65)))
        self.each_path(list(range(65)), r"prompt \(65 tokens\) \+ max_new_tokens \(1\) exceeds the context of 64")

    def test_context_overflow(self):
        self.each_path(list(range(10)), r"prompt \(10 tokens\) \+ max_new_tokens \(55\) exceeds the context of 64",
                       max_new_tokens=55)

    def test_bad_sampling_values(self):
        for options, pattern in (({"temperature": -1}, "temperature must be >= 0"),
                                 ({"top_p": 0}, r"top_p must be in \(0, 1\]"),
                                 ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
                                 ({"min_p": 2}, r"min_p must be in \[0, 1\]"),
                                 ({"top_k": -1}, "top_k must be in"),
                                 ({"repetition_penalty": 0}, "repetition_penalty must be > 0"),
                                 ({"presence_penalty": 3}, r"presence_penalty must be in \[-2, 2\]"),
                                 ({"max_new_tokens": -1}, "max_new_tokens must not be negative")):
            with self.subTest(**options):
                with self.assertRaisesRegex((mmfp4.Error, ValueError), pattern):
                    self.m.generate([1, 2, 3], **options)
                with self.assertRaisesRegex((mmfp4.Error, ValueError), pattern):
                    self.m.generate([1, 2, 3], use_cache=False, **options)

    def test_bad_python_values(self):
        with self.assertRaisesRegex(TypeError, "must be integers, got an array of float64"):
            self.m([1.5, 2.0])
        with self.assertRaisesRegex(TypeError, "not text"):
            self.m("hello")
        with self.assertRaisesRegex(ValueError, "1-D .* or 2-D"):
            self.m(np.zeros((1, 2, 3), dtype=np.int64))
        with self.assertRaisesRegex(mmfp4.Error, "sequence 0 is empty"):
            self.m([])
        with self.assertRaisesRegex(mmfp4.Error, "the prompt is empty"):
            self.m.generate([])
        with self.assertRaisesRegex(TypeError, "seed must be an integer"):
            self.m.generate([1], seed=1.5)
        with self.assertRaisesRegex(TypeError, "stop must be"):
            self.m.generate([1], stop=[""])
        with self.assertRaisesRegex(ValueError, "attention_mask has shape"):
            self.m([[1, 2]], attention_mask=[[1]])
        with self.assertRaisesRegex(ValueError, "stream\\(\\) takes one prompt"):
            self.m.stream([[1], [2]])

    def test_a_bad_row_cancels_the_batch_and_the_model_goes_on(self):
        with self.assertRaisesRegex(mmfp4.Error, "prompt token 0 has id 9999"):
            self.m.generate([[1, 2, 3], [9999]], max_new_tokens=4)
        self.assertEqual(self.m.generate([1, 2, 3], max_new_tokens=4, ignore_eos=True).shape, (7,))

    def test_closed_model(self):
        m = mmfp4.load(support.QWEN, device="cpu")
        m.close()
        with self.assertRaisesRegex(mmfp4.Error, "shutting down"):
            m([1, 2, 3])
        with self.assertRaisesRegex(mmfp4.Error, "shutting down"):
            m.generate([1, 2, 3])

    def test_no_tokenizer(self):
        m = support.model(os.path.join(support.SHARED_DIR, "fixtures", "parity", "llama3"))
        self.assertIsNone(m.tokenizer)
        with self.assertRaisesRegex(mmfp4.Error, "no tokenizer.json"):
            m.generate("text")
        with self.assertRaisesRegex(mmfp4.Error, "stop strings need a tokenizer"):
            m.generate([1, 2], stop="x")
        self.assertEqual(len(m.generate([1, 2], max_new_tokens=3, ignore_eos=True)), 5)


if __name__ == "__main__":
    unittest.main()
