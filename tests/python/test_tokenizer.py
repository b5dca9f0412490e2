"""model.tokenizer: the reference prompts' ids, round trips, transformers' call forms, the chat template."""

import unittest

import numpy as np

import support


class Tokenizer(unittest.TestCase):
    def setUp(self):
        self.m = support.model(support.GLM)
        self.tok = self.m.tokenizer

    def test_reference_prompts(self):
        for folder in (support.QWEN, support.GLM):
            tok = support.model(folder).tokenizer
            for c in support.load_reference(folder):
                self.assertEqual(tok.encode(c["prompt"]), c["input_ids"])
                self.assertEqual(tok.decode(c["input_ids"]), c["prompt"])
                self.assertEqual(tok.decode(np.array(c["input_ids"])), c["prompt"])

    def test_special_tokens(self):
        self.assertEqual(len(self.tok), 8192)
        self.assertEqual(self.tok.eos_token, "<|endoftext|>")
        self.assertEqual(self.tok.convert_tokens_to_ids("<|im_end|>"), self.tok.encode("<|im_end|>")[0])
        ids = self.tok.encode("Hi<|im_end|>")
        self.assertEqual(self.tok.decode(ids), "Hi<|im_end|>")  # transformers' default keeps them
        self.assertEqual(self.tok.decode(ids, skip_special_tokens=True), "Hi")
        self.assertEqual(self.tok.batch_decode([ids, ids[:-1]]), ["Hi<|im_end|>", "Hi"])
        self.assertEqual(self.tok.convert_ids_to_tokens(ids[-1]), "<|im_end|>")
        self.assertIsNone(self.tok.convert_tokens_to_ids("no such token"))

    def test_call_like_transformers(self):
        enc = self.tok("The quick brown fox")
        self.assertEqual(enc.input_ids, self.tok.encode("The quick brown fox"))
        self.assertEqual(enc["attention_mask"], [1] * len(enc.input_ids))
        enc = self.tok(["a b c d", "x"], return_tensors="np")
        self.assertEqual(enc.input_ids.shape, enc.attention_mask.shape)
        self.assertEqual(enc.attention_mask[1].tolist()[-1], 1)
        self.assertEqual(enc.attention_mask[1].tolist()[0], 0)  # left padding, for generation
        with self.assertRaisesRegex(ValueError, "return_tensors"):
            self.tok("x", return_tensors="pt")

    def test_chat_template(self):
        messages = [{"role": "user", "content": "What is Debian?"}]
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        self.assertEqual(text, "<|im_start|>user\nWhat is Debian?<|im_end|>\n<|im_start|>assistant\n")
        self.assertEqual(self.tok.apply_chat_template(messages, tokenize=False),
                         "<|im_start|>user\nWhat is Debian?<|im_end|>\n")
        ids = self.tok.apply_chat_template(messages, add_generation_prompt=True)
        self.assertEqual(ids, self.tok.encode(text, add_special_tokens=False))
        out = self.m.generate(ids, max_new_tokens=8, return_dict_in_generate=True)
        self.assertEqual(out.sequences[:len(ids)].tolist(), ids)

    def test_decode_errors(self):
        with self.assertRaisesRegex(Exception, "not in the vocabulary"):
            self.tok.decode([99999])
        with self.assertRaisesRegex(ValueError, "batch_decode"):
            self.tok.decode([[1, 2], [3]])
        with self.assertRaisesRegex(TypeError, "encode takes a str"):
            self.tok.encode(b"bytes")


if __name__ == "__main__":
    unittest.main()
