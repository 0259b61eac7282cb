// The Live view's client (flows/live.py; ARCHITECTURE.md, Live), run by the Live tab's HTML on load with
// `element` (that HTML). window.reenactLive.start(target) opens the socket, then the microphone: its speech
// goes to the server in 20 ms chunks of float32 at the sample rate the server names; frames come back as
// JPEG with their time in the speech and are drawn as they arrive; the speech comes back too, and with
// "Play the voice" it is played in step with the frames (headphones: you hear yourself late).
const live = window.reenactLive = window.reenactLive || {};
const FRAME = 1, AUDIO = 2;
const canvas = element.querySelector("#live-canvas");
const said = element.querySelector("#live-status");
const show = (text) => { said.textContent = text; };

const WORKLET = `
class Chunker extends AudioWorkletProcessor {
  constructor(options) { super(); this.size = options.processorOptions.size; this.buffer = []; }
  process(inputs) {
    const channel = inputs[0][0];
    if (channel) {
      for (const sample of channel) this.buffer.push(sample);
      while (this.buffer.length >= this.size) {
        this.port.postMessage(new Float32Array(this.buffer.splice(0, this.size)));
      }
    }
    return true;
  }
}
registerProcessor("reenact-chunker", Chunker);`;

live.stop = function (why) {
  if (live.socket) live.socket.close();
  if (live.microphone) live.microphone.getTracks().forEach((track) => track.stop());
  if (live.context) live.context.close();
  live.socket = live.microphone = live.context = null;
  if (why) show(why);
};

live.start = async function (target) {
  live.stop();
  live.frames = [];  // {time, opening, latency} per frame drawn
  live.speech = [];  // {time, rms} per piece of speech the server heard
  live.sent = [];
  live.base = live.drawn = undefined;
  live.clicked = performance.now();  // live.readyAt: when the server was ready (the start's two parts)
  const url = location.href.replace(/^http/, "ws").replace(/[?#].*$/, "").replace(/\/?$/, "/");
  const socket = live.socket = new WebSocket(`${url}live/socket?target=${encodeURIComponent(target)}`);
  socket.binaryType = "arraybuffer";
  show(`Loading ${target}...`);
  socket.onclose = (event) => { if (live.socket === socket) live.stop(event.reason || "Stopped."); };
  socket.onmessage = async (event) => {
    if (typeof event.data === "string") {
      const message = JSON.parse(event.data);
      if (message.type === "ready") await listen(socket, message);
      else if (message.type === "error") live.stop(message.text);
      else if (message.type === "stats") live.stats = message;
      return;
    }
    const view = new DataView(event.data);
    const kind = view.getUint8(0), time = view.getFloat64(1, true);
    if (kind === FRAME) draw(time, view.getFloat32(9, true), event.data.slice(13));
    else if (kind === AUDIO) {
      const samples = new Float32Array(event.data.slice(9));
      live.speech.push({time, rms: Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length)});
      play(time, samples);
    }
  };
};

async function listen(socket, ready) {
  live.ready = ready;
  live.readyAt = performance.now();
  const context = live.context = new AudioContext({sampleRate: ready.rate});
  await context.resume();
  live.microphone = await navigator.mediaDevices.getUserMedia({
    audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false},
  });
  const module = URL.createObjectURL(new Blob([WORKLET], {type: "application/javascript"}));
  await context.audioWorklet.addModule(module);
  const chunker = new AudioWorkletNode(context, "reenact-chunker",
                                       {processorOptions: {size: Math.round(ready.rate / 50)}});
  chunker.port.onmessage = (event) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    live.sent.push(performance.now());  // when chunk k left: the latency of the frames it makes
    socket.send(event.data.buffer);
  };
  context.createMediaStreamSource(live.microphone).connect(chunker);
  canvas.width = ready.width;
  canvas.height = ready.height;
  show(`Live on ${ready.target} (watermark ${ready.mark}): speak.`);
}

function draw(time, opening, jpeg) {
  // counted as it arrives; drawn once decoded, unless a later frame was drawn first
  const chunk = Math.min(Math.floor(time * 50), live.sent.length - 1);
  const latency = chunk >= 0 ? performance.now() - live.sent[chunk] : NaN;
  live.frames.push({time, opening, latency});
  createImageBitmap(new Blob([jpeg], {type: "image/jpeg"})).then((image) => {
    if (live.drawn !== undefined && time < live.drawn) return;
    live.drawn = time;
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
  });
  if (live.base === undefined && live.context) live.base = live.context.currentTime - time + 0.05;
  const latencies = live.frames.slice(-60).map((f) => f.latency).sort((a, b) => a - b);
  const median = latencies[Math.floor(latencies.length / 2)];
  show(`Live on ${live.ready.target}: ${live.frames.length} frames, ${time.toFixed(1)} s, ` +
       `latency ${Math.round(median)} ms, dropped ${live.stats ? live.stats.dropped : 0}`);
}

function play(time, samples) {
  const voice = document.querySelector("#live-voice input");
  if (!live.context || live.base === undefined || !voice || !voice.checked) return;
  const buffer = live.context.createBuffer(1, samples.length, live.ready.rate);
  buffer.copyToChannel(samples, 0);
  const source = live.context.createBufferSource();
  source.buffer = buffer;
  source.connect(live.context.destination);
  source.start(Math.max(live.context.currentTime, live.base + time));
}
