// bench/serve_bench.mjs: a load generator for an OpenAI-compatible server, measuring what vLLM's
// benchmark_serving measures: TTFT, ITL (gaps between streamed chunks), TPOT, end-to-end latency
// (p50/p90/p99), request and output-token throughput. Streams /v1/completions with
// stream_options.include_usage, so output tokens are the server's own count.
//   node serve_bench.mjs BASE_URL MODEL MODE N [PROMPT_WORDS] [MAX_TOKENS] [SEED]
// MODE: "cN" (N requests, at most N in flight) or "rR" (Poisson arrivals at R requests/s).
// Prints one JSON line of results. Requests carry llama.cpp's "ignore_eos" (hearth ignores the
// field; its byte-level bench model has no end-of-text token), so every request generates
// exactly MAX_TOKENS on both servers.
import http from 'node:http';

const [base, model, mode, nStr, pwStr = '24', mtStr = '64', seedStr = '1'] = process.argv.slice(2);
const url = new URL(base);
const N = Number(nStr), promptWords = Number(pwStr), maxTokens = Number(mtStr);

// a seeded generator (mulberry32): the same prompts and arrival times on every run
let s = Number(seedStr) >>> 0;
const rand = () => {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const words = 'the of and to in is that it was for on are with as his they at be this from have or by one had not but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know'.split(' ');
const prompts = Array.from({ length: N }, () => Array.from({ length: promptWords }, () => words[Math.floor(rand() * words.length)]).join(' '));

function one(prompt) {
  return new Promise((resolve) => {
    const body = JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 1, seed: 1, stream: true, stream_options: { include_usage: true }, ignore_eos: true });
    const t0 = performance.now();
    const r = { ok: false, ttft: 0, e2e: 0, itl: [], out: 0, prompt: 0 };
    let last = 0, buf = '';
    const req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      if (res.statusCode !== 200) { r.status = res.statusCode; res.resume(); res.on('end', () => resolve(r)); return; }
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const now = performance.now();
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i); buf = buf.slice(i + 2);
          if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
          const ch = JSON.parse(ev.slice(6));
          if (ch.usage) { r.out = ch.usage.completion_tokens; r.prompt = ch.usage.prompt_tokens; }
          if (!ch.choices.length || !ch.choices[0].text) continue;
          if (!r.ttft) r.ttft = now - t0; else r.itl.push(now - last);
          last = now;
        }
      });
      res.on('end', () => { r.e2e = performance.now() - t0; r.ok = r.out > 0; resolve(r); });
    });
    req.on('error', (e) => { r.status = String(e); resolve(r); });
    req.end(body);
  });
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
};

const results = [];
const t0 = performance.now();
if (mode.startsWith('c')) {
  const conc = Number(mode.slice(1));
  let next = 0;
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < N) results.push(await one(prompts[next++]));
  }));
} else {
  const rate = Number(mode.slice(1));
  const pending = [];
  for (let i = 0; i < N; i++) {
    pending.push(one(prompts[i]).then((r) => results.push(r)));
    const gap = -Math.log(1 - rand()) / rate; // exponential inter-arrival: a Poisson process
    if (i + 1 < N) await new Promise((res) => setTimeout(res, gap * 1000));
  }
  await Promise.all(pending);
}
const dur = (performance.now() - t0) / 1000;
const ok = results.filter((r) => r.ok);
const ttft = ok.map((r) => r.ttft), e2e = ok.map((r) => r.e2e), itl = ok.flatMap((r) => r.itl);
const tpot = ok.filter((r) => r.out > 1).map((r) => (r.e2e - r.ttft) / (r.out - 1));
const out = ok.reduce((a, r) => a + r.out, 0);
const summary = (xs) => ({ mean: xs.reduce((a, x) => a + x, 0) / (xs.length || 1), p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99) });
console.log(JSON.stringify({
  mode, requests: N, completed: ok.length, failed: N - ok.length, duration_s: dur,
  prompt_tokens_mean: ok.reduce((a, r) => a + r.prompt, 0) / (ok.length || 1),
  request_throughput: ok.length / dur, output_token_throughput: out / dur,
  ttft_ms: summary(ttft), tpot_ms: summary(tpot), itl_ms: summary(itl), e2e_ms: summary(e2e),
}));
