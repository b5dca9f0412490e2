// The bar for bench_tokenizer: Hugging Face's Rust tokenizers (npm package "tokenizers", its Node binding; one
// encode call runs on one thread) on the same text. Usage:
//   bench_tokenizer --dump-text /tmp/text.txt && NODE_PATH=<dir with node_modules> node rust_baseline.js DIR /tmp/text.txt
const { Tokenizer } = require('tokenizers');
const fs = require('fs');
(async () => {
  const [dir, textFile] = process.argv.slice(2);
  const text = fs.readFileSync(textFile, 'utf8');
  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(dir + '/tokenizer.json');
  const load = Number(process.hrtime.bigint() - t0) / 1e9;
  const bytes = Buffer.byteLength(text);
  const times = [];
  let n = 0;
  for (let i = 0; i < 4; i++) {
    t0 = process.hrtime.bigint();
    n = (await tok.encode(text, null, { addSpecialTokens: false })).getIds().length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`rust tokenizers (node binding ${require('tokenizers/package.json').version}): load ${load.toFixed(3)} s, ` +
              `encode ${(bytes / 1e6 / times[0]).toFixed(1)} MB/s first call, ${(bytes / 1e6 / Math.min(...times.slice(1))).toFixed(1)} MB/s best of 3 after; ${n} tokens`);
})();
