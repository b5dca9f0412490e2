// Prints, as JSON {pattern: [code points]}, the code points each regex matches under Oniguruma as bundled in
// Hugging Face's Rust tokenizers (the npm package "tokenizers", its Node binding): gen_unicode_delta.py uses it.
// Usage: NODE_PATH=<dir with node_modules> node onig_classes.js '\p{L}' '\p{N}' ...
const { Tokenizer } = require('tokenizers');
function splitter(pattern) {
  return Tokenizer.fromString(JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'Split', pattern: { Regex: pattern }, behavior: 'Removed', invert: false },
    post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: false, byte_fallback: false, vocab: { a: 0 }, merges: [] } }));
}
const all = [];
for (let c = 1; c < 0x110000; c++) if (c < 0xD800 || c >= 0xE000) all.push(String.fromCodePoint(c));
const text = all.join('');
const out = {};
for (const pattern of process.argv.slice(2)) {
  // The pieces left after removing the matches are exactly the characters the pattern does not match.
  const left = new Set();
  for (const [piece] of splitter(pattern).getPreTokenizer().preTokenizeString(text))
    for (const ch of piece) left.add(ch.codePointAt(0));
  out[pattern] = all.map((ch) => ch.codePointAt(0)).filter((c) => !left.has(c));
}
process.stdout.write(JSON.stringify(out));
