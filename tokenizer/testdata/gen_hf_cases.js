// Regenerates hf_random_cases.json and hf_split_cases.json: random strings
// built to stress the pre-tokenizer (every character class, contractions,
// whitespace runs, added tokens), encoded by Hugging Face tokenizers (the npm
// package "tokenizers", the same Rust core as the Python one), and split by
// its Qwen2, LLaMA-3 and GPT-2 pre-tokenizers.
//
//   npm install tokenizers@0.23.2
//   node gen_hf_cases.js ../../../shared/models/qwen2-tiny-coder/tokenizer.json .
const fs = require('fs');
const path = require('path');
const os = require('os');
const { Tokenizer, byteLevelPreTokenizer } = require('tokenizers');

const pieces = [
  'a', 'Z', 'é', 'ß', 'ſ', 'İ', 'ǅ', 'ʰ', 'ﬁ', 'Ω', 'я', 'Ж', 'א', 'ب', 'क', '्', 'ा', '中', '文', 'の', 'ㄱ', '한',
  '0', '7', '٣', '½', '²', 'Ⅻ', '①', '𝟙',
  ' ', ' ', ' ', '  ', '\t', '\n', '\r', '\r\n', '\n\n', '\u000b', '\u000c', '\u0085', '\u00a0', '\u1680', '\u2000',
  '\u2028', '\u2029', '\u202f', '\u3000', '\u200b', '\u180e', '\u001c', '\u001f',
  "'", "'s", "'S", "'t", "'re", "'RE", "'Ve", "'m", "'ll", "'LL", "'lL", "'d", "'D", "'ſ", "'x", "''",
  '.', ',', '!', '?', '-', '_', '(', ')', '{', '}', '"', '#', '$', '%', '&', '*', '+', '/', ':', ';', '<', '=', '>',
  '@', '[', '\\', ']', '^', '`', '|', '~', '…', '—', '“', '”', '€', '©',
  '\u0301', '\u0308', 'e\u0301', 'A\u030a', '\u0915\u093c', '\u200d', '\ufe0f',
  '😀', '👍🏽', '👨‍👩‍👧', '🇯🇵', '𝔘', '\ufffd',
  'hello', 'World', ' the', ' func', 'return', 'HTTP', '123', '4567', '3.14',
  '<|im_start|>', '<|im_end|>', '<|endoftext|>', '<|fim_prefix|>', '<tool_call>', '</tool_call>', '<|im_', '|>', '<',
];

// Deterministic PRNG (mulberry32) so reruns give the same file.
let seed = 20261125;
function rand() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function randomText() {
  const n = 1 + Math.floor(rand() * 16);
  let s = '';
  for (let j = 0; j < n; j++) s += pieces[Math.floor(rand() * pieces.length)];
  return s;
}

const llama3 = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

(async () => {
  const src = process.argv[2], out = process.argv[3];
  const tok = Tokenizer.fromFile(src);
  const producer = 'tokenizers (npm) 0.23.2, gen_hf_cases.js';
  const cases = [];
  for (let i = 0; i < 1500; i++) {
    const s = randomText();
    const e = await tok.encode(s, null, { addSpecialTokens: false });
    const ids = e.getIds();
    const decoded = await tok.decode(ids, false);
    cases.push({ text: s, ids, decoded });
  }
  fs.writeFileSync(path.join(out, 'hf_random_cases.json'), JSON.stringify({ producer, cases }) + '\n');

  // The same tokenizer.json with the LLaMA-3 digits rule, for its splits.
  const j = JSON.parse(fs.readFileSync(src, 'utf8'));
  j.pre_tokenizer.pretokenizers[0].pattern.Regex = llama3;
  const tmp = path.join(os.tmpdir(), 'llama3-split-tokenizer.json');
  fs.writeFileSync(tmp, JSON.stringify(j));
  const qwen2Pre = tok.getPreTokenizer();
  const llama3Pre = Tokenizer.fromFile(tmp).getPreTokenizer();
  const gpt2Pre = byteLevelPreTokenizer(false, true);
  const pieces = (p, s) => p.preTokenizeString(s).map((x) => x[0]);
  const splits = [];
  for (let i = 0; i < 1000; i++) {
    let s = randomText();
    if (i % 4 == 0) s += '12345678 9 99' + randomText();
    splits.push({ text: s, qwen2: pieces(qwen2Pre, s), llama3: pieces(llama3Pre, s), gpt2: pieces(gpt2Pre, s) });
  }
  fs.writeFileSync(path.join(out, 'hf_split_cases.json'), JSON.stringify({ producer, note: 'pieces in byte-level spelling', cases: splits }) + '\n');

  // Added tokens with lstrip, rstrip, single_word and normalized set.
  const k = JSON.parse(fs.readFileSync(src, 'utf8'));
  const extra = [
    { id: 151665, content: '<mask>', single_word: true, lstrip: true, rstrip: true, normalized: false, special: true },
    { id: 151666, content: '<left>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: false },
    { id: 151667, content: '<right>', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
    { id: 151668, content: '<sw>', single_word: true, lstrip: false, rstrip: false, normalized: false, special: false },
    { id: 151669, content: 'caf\u00e9', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
  ];
  k.added_tokens.push(...extra);
  const tmp2 = path.join(os.tmpdir(), 'added-options-tokenizer.json');
  fs.writeFileSync(tmp2, JSON.stringify(k));
  const tok2 = Tokenizer.fromFile(tmp2);
  const parts = ['<mask>', '<left>', '<right>', '<sw>', 'word', 'cafe\u0301', 'caf\u00e9', ' ', '  ', '\t', '\n', '\u3000', 'a', 'x_', '_', '7', ',', '\u0301', '<|im_end|>'];
  const added = [];
  for (let i = 0; i < 600; i++) {
    const n = 1 + Math.floor(rand() * 10);
    let s = '';
    for (let j = 0; j < n; j++) s += parts[Math.floor(rand() * parts.length)];
    const e = await tok2.encode(s, null, { addSpecialTokens: false });
    added.push({ text: s, ids: e.getIds(), decoded: await tok2.decode(e.getIds(), false) });
  }
  fs.writeFileSync(path.join(out, 'hf_added_cases.json'), JSON.stringify({ producer, added_tokens: extra, cases: added }) + '\n');
})();
