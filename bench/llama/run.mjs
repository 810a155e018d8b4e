// Runs llama.cpp (node-llama-cpp's prebuilt CPU libllama) on one GGUF for
// apr's benchmark command: load the model, evaluate a prompt given as token
// ids, decode N tokens greedily, and print one JSON object on stdout with the
// same fields as `apr bench-run`.
//
//   node run.mjs MODEL.gguf THREADS N_PREDICT CTX_SIZE ID,ID,...
//
// No build from source and no download: only the prebuilt binary of
// @node-llama-cpp/linux-x64 is accepted (build: "never", skipDownload), CPU only.
import fs from "node:fs";
import process from "node:process";

process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");

function statusBytes(field) {
    const m = fs.readFileSync("/proc/self/status", "utf8").match(new RegExp("^" + field + ":\\s+(\\d+) kB", "m"));
    if (!m) throw new Error("/proc/self/status has no " + field);
    return Number(m[1]) * 1024;
}

const [modelPath, threadsArg, predictArg, ctxArg, idsArg] = process.argv.slice(2);
if (!idsArg) {
    console.error("usage: node run.mjs MODEL.gguf THREADS N_PREDICT CTX_SIZE ID,ID,...");
    process.exit(2);
}
const threads = Number(threadsArg), nPredict = Number(predictArg), ctxSize = Number(ctxArg);
const ids = idsArg.split(",").map(Number);

const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    maxThreads: threads,
    logLevel: LlamaLogLevel.error,
    progressLogs: false,
});
const baseRSS = statusBytes("VmRSS");

const t0 = performance.now();
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
    contextSize: ctxSize,
    batchSize: Math.max(ids.length, 1),
    threads,
});
const sequence = context.getSequence();
const loadS = (performance.now() - t0) / 1000;

// The generator yields the first token once the prompt is evaluated; each
// further token costs one single-token evaluation.
const output = [];
let tPrompt = 0, tFirst = 0;
const t1 = performance.now();
for await (const token of sequence.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
    output.push(token);
    if (output.length === 1) {
        tFirst = performance.now();
        tPrompt = (tFirst - t1) / 1000;
    }
    if (output.length > nPredict) break;
}
const decodeS = (performance.now() - tFirst) / 1000;
if (output.length <= nPredict) {
    console.error(`llama.cpp stopped after ${output.length} tokens, wanted ${nPredict + 1}`);
    process.exit(1);
}

const result = {
    engine: "llama.cpp",
    threads: context.currentThreads,
    load_s: loadS,
    prompt_tokens: ids.length,
    prompt_s: tPrompt,
    decode_tokens: nPredict,
    decode_s: decodeS,
    base_rss_bytes: baseRSS,
    peak_rss_bytes: statusBytes("VmHWM"),
    output,
    flash_attention: context.flashAttention,
    binary: `${llama.buildType} ${llama.llamaCppRelease?.release ?? ""}`.trim(),
    // The CPU variant of ggml the prebuilt package picked for this machine.
    cpu_backend: (fs.readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu-([\w-]+)\.so/) ?? [])[1],
};
process.stdout.write(JSON.stringify(result) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
