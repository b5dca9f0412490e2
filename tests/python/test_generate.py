"""model.generate / model.stream: with and without the cache, batches against singles, streams against generate,
stops, the CLI (the C++ path) against Python, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import numpy as np

import mmfp4
import support

SAMPLED = dict(temperature=0.8, top_k=40, top_p=0.95, repetition_penalty=1.1, seed=1234)


def new_ids(out, prompt):
    return out[len(prompt):].tolist()


class CacheOrNot(unittest.TestCase):
    def setUp(self):
        self.m = support.model(support.QWEN)
        self.cases = support.load_reference(support.QWEN)

    def test_sampled_with_a_seed(self):
        for c in self.cases[:3]:
            a = self.m.generate(c["input_ids"], max_new_tokens=24, ignore_eos=True, **SAMPLED)
            b = self.m.generate(c["input_ids"], max_new_tokens=24, ignore_eos=True, use_cache=False, **SAMPLED)
            np.testing.assert_array_equal(a, b)
            greedy = self.m.generate(c["input_ids"], max_new_tokens=24, ignore_eos=True)
            self.assertFalse(np.array_equal(a, greedy), "the sampling options were used")

    def test_eos_and_stop_strings_end_both_the_same_way(self):
        c = self.cases[0]  # its greedy continuation has EOS (id 0) at index 11
        self.assertEqual(c["greedy_ids"][11], 0)
        for use_cache in (True, False):
            r = self.m.generate(c["input_ids"], max_new_tokens=32, use_cache=use_cache, return_dict_in_generate=True)
            self.assertEqual(r.new_ids[0].tolist(), c["greedy_ids"][:11])
            self.assertEqual(r.finish_reasons, ["stop"])
            # eos_token_id replaces the model's EOS ids (transformers semantics).
            out = self.m.generate(c["input_ids"], max_new_tokens=32, eos_token_id=c["greedy_ids"][3],
                                  use_cache=use_cache)
            self.assertEqual(new_ids(out, c["input_ids"]), c["greedy_ids"][:3])
            full = self.m.tokenizer.decode(c["greedy_ids"][:11])
            stop = full[len(full) // 2:][:3]
            r = self.m.generate(c["input_ids"], max_new_tokens=32, stop=stop, use_cache=use_cache,
                                return_dict_in_generate=True)
            self.assertEqual(r.texts[0], full[:full.index(stop)])
            self.assertEqual(r.finish_reasons, ["stop"])

    def test_no_new_tokens(self):
        for use_cache in (True, False):
            self.assertEqual(self.m.generate([5, 6, 7], max_new_tokens=0, use_cache=use_cache).tolist(), [5, 6, 7])

    def test_default_length_fits_the_context(self):
        m = support.model(support.QWEN, max_context=32)
        out = m.generate(list(range(10, 30)), ignore_eos=True)
        self.assertEqual(len(out), 32)


class BatchesEqualSingles(unittest.TestCase):
    def setUp(self):
        self.m = support.model(support.GLM)
        self.prompts = [c["input_ids"] for c in support.load_reference(support.GLM)]
        self.prompts.append([17])

    def check(self, m, **options):
        out = m.generate(self.prompts, max_new_tokens=12, ignore_eos=True, return_dict_in_generate=True, **options)
        for i, p in enumerate(self.prompts):
            single = m.generate(p, max_new_tokens=12, ignore_eos=True, **options)
            self.assertEqual(out.new_ids[i].tolist(), new_ids(single, p), f"prompt {i} {options}")
            self.assertEqual(out.sequences[i, :len(single)].tolist(), single.tolist())
        return out

    def test_greedy_sampled_and_without_cache(self):
        self.check(self.m)
        self.check(self.m, **SAMPLED)
        self.check(self.m, use_cache=False)

    def test_ragged_rows_are_padded_after_their_tokens(self):
        out = self.m.generate([[1, 2, 3, 4], [5]], max_new_tokens=3, ignore_eos=True, pad_token_id=-1)
        self.assertEqual(out.shape, (2, 7))
        self.assertEqual(out[1, 4:].tolist(), [-1, -1, -1])

    def test_more_prompts_than_the_batch_and_the_queue(self):
        m = support.model(support.GLM, max_batch=2, max_queue=1)
        self.check(m)

    def test_left_padded_batch_from_the_tokenizer(self):
        texts = ["The quick brown fox", "Debian", "import os\nimport sys"]
        enc = self.m.tokenizer(texts, return_tensors="np")
        out = self.m.generate(**enc, max_new_tokens=6, ignore_eos=True)
        width = enc["input_ids"].shape[1]
        for i, t in enumerate(texts):
            single = self.m.generate(t, max_new_tokens=6, ignore_eos=True)
            n = len(self.m.tokenizer.encode(t))
            self.assertEqual(out[i, width - n:].tolist(), single.tolist())


class Streams(unittest.TestCase):
    def setUp(self):
        self.m = support.model(support.GLM)
        self.prompt = support.load_reference(support.GLM)[2]["input_ids"]

    def test_stream_equals_generate(self):
        for use_cache in (True, False):
            r = self.m.generate(self.prompt, max_new_tokens=20, ignore_eos=True, return_dict_in_generate=True,
                                use_cache=use_cache, **SAMPLED)
            s = self.m.stream(self.prompt, max_new_tokens=20, ignore_eos=True, use_cache=use_cache, **SAMPLED)
            tokens = list(s)
            self.assertEqual([t.id for t in tokens if t.id is not None], r.new_ids[0].tolist())
            self.assertEqual("".join(t.text for t in tokens), r.texts[0])
            self.assertEqual((s.ids, s.text, s.finish_reason), (r.new_ids[0].tolist(), r.texts[0], "length"))

    def test_generate_stream_true_and_text_prompt(self):
        s = self.m.generate("The quick brown fox", max_new_tokens=5, ignore_eos=True, stream=True)
        self.assertIsInstance(s, mmfp4.Stream)
        self.assertEqual(len([t for t in s if t.id is not None]), 5)

    def test_concurrent_streams_equal_singles(self):
        prompts = [c["input_ids"] for c in support.load_reference(support.GLM)]
        streams = [self.m.stream(p, max_new_tokens=10, ignore_eos=True) for p in prompts]
        while any(s.finish_reason is None for s in streams):  # interleaved reads
            for s in streams:
                next(s, None)
        for p, s in zip(prompts, streams):
            self.assertEqual(s.ids, new_ids(self.m.generate(p, max_new_tokens=10, ignore_eos=True), p))

    def test_cancel_and_break(self):
        with self.m.stream(self.prompt, max_new_tokens=200, ignore_eos=True) as s:
            for i, _ in enumerate(s):
                if i == 2:
                    s.cancel()
        self.assertEqual(s.finish_reason, "cancelled")
        self.assertLess(len(s.ids), 200)
        for _ in self.m.stream(self.prompt, max_new_tokens=200, ignore_eos=True):
            break  # the dropped stream's request is cancelled; the engine goes on serving
        self.assertEqual(len(self.m.generate(self.prompt, max_new_tokens=3, ignore_eos=True)), len(self.prompt) + 3)


@unittest.skipUnless(os.path.exists(os.environ.get("MMFP4_CLI", "")), "MMFP4_CLI (the mmfp4 binary) not given")
class MatchesTheCli(unittest.TestCase):
    """`mmfp4 generate --json` (Engine::generate in C++) and model.generate give the same ids."""

    def cli(self, folder, prompt, n, *extra):
        cmd = [os.environ["MMFP4_CLI"], "generate", "-m", folder, "--device", support.DEVICE, "--prompt-ids",
               ",".join(map(str, prompt)), "-n", str(n), "--ignore-eos", "--json", *extra]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])["generated_ids"]

    def test_greedy_and_sampled(self):
        for folder in (support.QWEN, support.GLM):
            m = support.model(folder)
            p = support.load_reference(folder)[3]["input_ids"]
            self.assertEqual(self.cli(folder, p, 16, "--temp", "0"),
                             new_ids(m.generate(p, max_new_tokens=16, ignore_eos=True), p))
            self.assertEqual(self.cli(folder, p, 16, "--temp", "0.8", "--top-k", "40", "--seed", "99"),
                             new_ids(m.generate(p, max_new_tokens=16, ignore_eos=True, temperature=0.8, top_k=40,
                                                seed=99), p))


class PythonThreads(unittest.TestCase):
    def test_threads_run_at_once_and_equal_singles(self):
        # The GIL is released while the engine works, so the threads' requests are batched together.
        m = support.model(support.GLM)
        prompts = [c["input_ids"] for c in support.load_reference(support.GLM)]
        out = [None] * len(prompts)

        def work(i):
            out[i] = m.generate(prompts[i], max_new_tokens=10, ignore_eos=True, **SAMPLED)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p, o in zip(prompts, out):
            np.testing.assert_array_equal(o, m.generate(p, max_new_tokens=10, ignore_eos=True, **SAMPLED))

    def test_exit_while_daemon_threads_compute(self):
        # CPython ends daemon threads that want the GIL back during shutdown; that must not abort the process.
        script = textwrap.dedent("""
            import sys, threading, time
            import mmfp4
            m = mmfp4.load(sys.argv[1], device=sys.argv[2])
            s = m.stream([1, 2, 3], max_new_tokens=2000, ignore_eos=True)
            next(s)
            jobs = [lambda: m.generate([4, 5, 6], max_new_tokens=3000, ignore_eos=True),
                    lambda: [m(list(range(1, 2000))) for _ in range(100)]]
            for job in jobs:
                threading.Thread(target=job, daemon=True).start()
            time.sleep(0.3)
            print("exiting", flush=True)
        """)
        r = subprocess.run([sys.executable, "-c", script, support.QWEN, support.DEVICE], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "exiting"), r.stderr)


class CtrlC(unittest.TestCase):
    """SIGINT during a long generate cancels it promptly, raises KeyboardInterrupt, leaves the model usable."""

    SCRIPT = textwrap.dedent("""
        import signal, sys, time
        import mmfp4
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if the test runner ignores SIGINT
        m = mmfp4.load(sys.argv[1], device=sys.argv[2])
        for how in ("generate", "generate_no_cache", "stream"):
            print("ready", flush=True)
            t = time.time()
            try:
                if how == "stream":
                    for _ in m.stream([1, 2, 3], max_new_tokens=4000, ignore_eos=True):
                        pass
                else:
                    m.generate([1, 2, 3], max_new_tokens=4000, ignore_eos=True, use_cache=how == "generate")
                print("finished", how, flush=True)
            except KeyboardInterrupt:
                print("interrupted", how, round(time.time() - t, 1), flush=True)
            assert len(m.generate([1, 2, 3], max_new_tokens=4, ignore_eos=True)) == 7
        print("ok", flush=True)
    """)

    def test_interrupt(self):
        p = subprocess.Popen([sys.executable, "-c", self.SCRIPT, support.QWEN, support.DEVICE],
                             stdout=subprocess.PIPE, text=True)
        lines = []
        try:
            for line in p.stdout:
                lines.append(line.strip())
                if line.startswith("ready"):
                    time.sleep(0.5)
                    p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(timeout=60), 0)
        finally:
            p.kill()
            p.stdout.close()
        interrupted = [l.split() for l in lines if l.startswith("interrupted")]
        self.assertEqual([w[1] for w in interrupted], ["generate", "generate_no_cache", "stream"], lines)
        for w in interrupted:  # 4000 tokens take ~10 s; the signal came after 0.5 s
            self.assertLess(float(w[2]), 3.0, lines)
        self.assertEqual(lines[-1], "ok")


if __name__ == "__main__":
    unittest.main()
