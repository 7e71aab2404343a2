// The browser phone (docs/dashboard.md "Talk to your agent"): the microphone to the agent
// over this site's WebSocket, the agent's voice back. No library, no build step.
// Wire: a JSON hello {type, rate, csrf}, then binary s16le PCM at `rate`; the server sends
// binary s16le PCM at the call's rate (16 kHz) on its 20 ms clock and JSON events.
(function () {
  "use strict";
  const root = document.getElementById("phone");
  if (!root) return;
  const startButton = document.getElementById("phone-start");
  const stopButton = document.getElementById("phone-stop");
  const statusLine = document.getElementById("phone-status");
  const transcript = document.getElementById("phone-transcript");
  const level = document.getElementById("phone-level");
  // Audio arrives paced on the server's 20 ms clock; this much is kept queued against
  // network jitter before the first frame plays.
  const JITTER_S = 0.08;

  let socket = null;
  let context = null;
  let stream = null;
  let capture = null;
  let playAt = 0;
  let playRate = 16000;
  let playing = [];

  function say(text) {
    statusLine.textContent = text;
  }

  function addLine(speaker, text, interrupted) {
    const item = document.createElement("li");
    item.className = "turn " + speaker;
    const who = document.createElement("span");
    who.className = "speaker";
    who.textContent = speaker === "agent" ? "Agent" : "You";
    const words = document.createElement("p");
    words.textContent = text + (interrupted ? " (interrupted)" : "");
    item.append(who, words);
    transcript.append(item);
  }

  function play(buffer) {
    const samples = new Int16Array(buffer);
    if (!samples.length) return;
    const audio = context.createBuffer(1, samples.length, playRate);
    const channel = audio.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 0x8000;
    const source = context.createBufferSource();
    source.buffer = audio;
    source.connect(context.destination);
    const now = context.currentTime;
    if (playAt < now) playAt = now + JITTER_S; // a gap, or the first frame: refill
    source.start(playAt);
    playAt += audio.duration;
    playing.push(source);
    source.onended = () => {
      playing = playing.filter((s) => s !== source);
    };
  }

  function silence() {
    // Barge-in: what is queued was cut off on the server; stop it here too.
    for (const source of playing) {
      try {
        source.stop();
      } catch (e) {
        /* already stopped */
      }
    }
    playing = [];
    playAt = 0;
  }

  function onEvent(event) {
    if (event.type === "started") {
      playRate = event.rate;
      say("Connected: talk to your agent.");
    } else if (event.type === "transcript") {
      addLine(event.speaker, event.text, event.interrupted);
    } else if (event.type === "barge_in") {
      silence();
    } else if (event.type === "ended") {
      say("The call ended.");
    }
  }

  async function openMicrophone() {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    context = new AudioContext();
    const input = context.createMediaStreamSource(stream);
    const send = (pcm, peak) => {
      level.value = peak;
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(pcm);
    };
    if (context.audioWorklet) {
      await context.audioWorklet.addModule(root.dataset.worklet);
      capture = new AudioWorkletNode(context, "phone-capture");
      capture.port.onmessage = (m) => send(m.data.pcm, m.data.peak);
    } else {
      // Older browsers: the deprecated ScriptProcessor does the same on the main thread.
      capture = context.createScriptProcessor(1024, 1, 1);
      capture.onaudioprocess = (e) => {
        const input = e.inputBuffer.getChannelData(0);
        const pcm = new Int16Array(input.length);
        let peak = 0;
        for (let i = 0; i < input.length; i++) {
          const s = Math.max(-1, Math.min(1, input[i]));
          peak = Math.max(peak, Math.abs(s));
          pcm[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
        }
        send(pcm.buffer, peak);
      };
    }
    input.connect(capture);
    // A worklet node only runs when connected onwards; it outputs silence.
    capture.connect(context.destination);
  }

  function closeMicrophone() {
    if (capture) capture.disconnect();
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (context) context.close();
    capture = stream = context = null;
    level.value = 0;
  }

  async function start() {
    startButton.disabled = true;
    transcript.replaceChildren();
    say("Opening the microphone…");
    try {
      await openMicrophone();
    } catch (error) {
      say("No microphone: " + error.message);
      closeMicrophone();
      startButton.disabled = false;
      return;
    }
    const url = new URL(root.dataset.socket, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "hello", rate: context.sampleRate, csrf: root.dataset.csrf }));
      say("Calling…");
      stopButton.disabled = false;
    };
    socket.onmessage = (m) => {
      if (typeof m.data === "string") onEvent(JSON.parse(m.data));
      else play(m.data);
    };
    socket.onclose = (e) => {
      if (e.code !== 1000) say("The call ended: " + (e.reason || "connection closed (" + e.code + ")"));
      else if (statusLine.textContent !== "The call ended.") say("The call ended.");
      socket = null;
      closeMicrophone();
      startButton.disabled = false;
      stopButton.disabled = true;
    };
  }

  function stop() {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "hangup" }));
    stopButton.disabled = true;
  }

  startButton.addEventListener("click", start);
  stopButton.addEventListener("click", stop);
})();
