'use strict';
// peerd room page: room protocol over WebSocket, audio mesh with RTCPeerConnection,
// SimplePeer-compatible payloads ({type:'offer'|'answer',sdp}, {type:'candidate',candidate:{...}}).
(() => {
  const q = new URLSearchParams(location.search);
  const trickle = q.get('trickle') !== '0';
  const autojoin = q.get('autojoin') === '1';
  const myId = 'web-' + Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
  const $ = (id) => document.getElementById(id);

  let ws = null;
  let localStream = null;
  let micOn = true;
  let speaking = false;
  let roomId = null;
  let roomName = '';
  let participants = [];
  const peers = new Map();   // id -> {pc, polite, makingOffer, ignoreOffer, pending, state, analyser, freqs, level}
  let audioCtx = null;

  const status = { id: myId, name: '', room: null, joined: false, trickle, peers: {}, errors: [] };
  window.peerdStatus = status;

  $('mode').textContent = trickle ? 'trickle ICE' : 'non-trickle ICE';
  $('name').value = q.get('name') || localStorage.getItem('peerd.name') || '';

  function log(...args) { console.log('[peerd]', ...args); }
  function showError(text) {
    const el = $('error');
    el.textContent = text; el.hidden = !text;
    if (text) status.errors.push(text);
  }
  function nowIso() { return new Date().toISOString(); }
  function me() {
    return {
      id: myId, 'имя': status.name || 'Гость', 'телеграм_id': null, 'аватар': null, 'подключен': true,
      'в_комнате': roomId, 'микрофон_включен': micOn, 'говорит': speaking, 'последняя_активность': nowIso(),
    };
  }
  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    ws = new WebSocket(`${proto}://${location.host}/ws`);
    ws.onopen = () => {
      $('conn').textContent = 'подключено'; $('conn').className = 'pill on';
      if (status.name) register();
      send({ 'тип': 'получить-комнаты' });
    };
    ws.onclose = () => {
      $('conn').textContent = 'нет соединения'; $('conn').className = 'pill off';
      for (const id of [...peers.keys()]) closePeer(id);
      setTimeout(connect, 1000 + Math.random() * 1000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      handle(msg).catch((e) => log('handler error', String(e)));
    };
  }
  let registered = false;
  function register() {
    send({ 'тип': 'присоединиться', 'пользователь': me() });
    registered = true;
    if (roomId) send({ 'тип': 'присоединиться-к-комнате', 'комната_id': roomId, 'пользователь_id': myId, 'пароль': lastPassword });
  }

  async function handle(msg) {
    switch (msg['тип']) {
      case 'комнаты-обновлены': fillRooms(msg['комнаты'] || []); break;
      case 'присоединился-к-комнате':
        if (msg['пользователь'] && msg['пользователь'].id === myId) {
          roomId = msg['комната'].id; roomName = msg['комната']['название'];
          status.room = roomId; status.joined = true; showRoom();
        }
        break;
      case 'комната-создана': break;
      case 'участники-комнаты-обновлены':
        if (msg['комната_id'] !== roomId) break;
        participants = msg['участники'] || [];
        syncPeers();
        render();
        break;
      case 'покинул-комнату':
        if (msg['комната_id'] === roomId) closePeer(msg['пользователь_id']);
        break;
      case 'микрофон-переключен':
      case 'говорит': {
        noteAnnouncement(msg);
        const p = participants.find((x) => x.id === msg['пользователь_id']);
        if (p) {
          if (msg['тип'] === 'говорит') p['говорит'] = !!msg['говорит'];
          else p['микрофон_включен'] = !!msg['включен'];
          render();
        }
        break;
      }
      case 'webrtc-signal':
        if (msg['к'] === myId && msg['комната'] === roomId) await onSignal(msg['от'], msg['данные'] || {});
        break;
      case 'ошибка': showError(msg['сообщение'] || 'ошибка'); break;
      default: break;
    }
  }

  // What others announced, in order (tests check that peerd's mute and speaking reach the page).
  function noteAnnouncement(msg) {
    const key = msg['тип'] === 'говорит' ? 'speakingAnnounced' : 'microphoneAnnounced';
    const id = msg['пользователь_id'];
    const list = ((status[key] = status[key] || {})[id] = status[key][id] || []);
    list.push(msg['тип'] === 'говорит' ? !!msg['говорит'] : !!msg['включен']);
    if (list.length > 50) list.splice(0, list.length - 50);
  }

  function fillRooms(rooms) {
    const sel = $('room');
    const want = sel.value || q.get('room') || 'general';
    sel.innerHTML = '';
    for (const r of rooms) {
      const o = document.createElement('option');
      o.value = r.id;
      o.textContent = `${r['название']} (${(r['участники'] || []).length}/${r['максимум_участников']})${r['приватная'] ? ' 🔒' : ''}`;
      sel.appendChild(o);
    }
    if ([...sel.options].some((o) => o.value === want)) sel.value = want;
  }

  let lastPassword = null;
  async function join() {
    showError('');
    status.name = $('name').value.trim() || 'Гость';
    localStorage.setItem('peerd.name', status.name);
    const target = $('room').value || q.get('room') || 'general';
    try { await openMic(); } catch (e) { showError('Нет доступа к микрофону: ' + e.message); return; }
    lastPassword = $('password').value || null;
    if (!registered) register();
    status.joinedAt = Date.now();
    send({ 'тип': 'присоединиться-к-комнате', 'комната_id': target, 'пользователь_id': myId, 'пароль': lastPassword });
  }

  function leave() {
    if (!roomId) return;
    send({ 'тип': 'покинуть-комнату', 'комната_id': roomId, 'пользователь_id': myId });
    for (const id of [...peers.keys()]) closePeer(id);
    roomId = null; status.room = null; status.joined = false; participants = [];
    $('roomView').hidden = true; $('join').hidden = false;
  }

  async function openMic() {
    if (localStream) return;
    // ?processing=0 turns off echo cancellation, noise suppression and gain control (test tones survive them).
    const processing = new URLSearchParams(location.search).get('processing') !== '0';
    localStream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: processing, noiseSuppression: processing, autoGainControl: processing }, video: false });
    audioCtx = audioCtx || new AudioContext();
    if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    const src = audioCtx.createMediaStreamSource(localStream);
    const an = audioCtx.createAnalyser();
    an.fftSize = 1024;
    src.connect(an);
    const buf = new Float32Array(an.fftSize);
    let lastLoud = 0;
    setInterval(() => {
      an.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      $('meterBar').style.width = Math.min(100, rms * 400) + '%';
      const now = performance.now();
      if (micOn && rms > 0.02) lastLoud = now;
      const s = micOn && now - lastLoud < 400;
      if (s !== speaking) {
        speaking = s;
        if (roomId) send({ 'тип': 'говорит', 'пользователь_id': myId, 'комната_id': roomId, 'говорит': s });
      }
    }, 100);
  }

  function toggleMute() {
    micOn = !micOn;
    for (const t of localStream ? localStream.getAudioTracks() : []) t.enabled = micOn;
    $('muteBtn').textContent = micOn ? 'Выключить микрофон' : 'Включить микрофон';
    $('muteBtn').classList.toggle('muted', !micOn);
    if (roomId) send({ 'тип': 'микрофон-переключен', 'пользователь_id': myId, 'комната_id': roomId, 'включен': micOn });
  }

  // --- peers -------------------------------------------------------------------------------

  function syncPeers() {
    const ids = new Set(participants.map((p) => p.id));
    for (const id of [...peers.keys()]) if (!ids.has(id)) closePeer(id);
    for (const p of participants) {
      if (p.id !== myId && !peers.has(p.id)) {
        const peer = makePeer(p.id);
        offer(p.id, peer).catch((e) => log('offer failed', p.id, String(e)));
      }
    }
  }

  function makePeer(id) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    const peer = { pc, polite: myId < id, makingOffer: false, ignoreOffer: false, pending: [], state: 'new', dominantHz: 0, level: 0 };
    peers.set(id, peer);
    for (const t of localStream.getAudioTracks()) pc.addTrack(t, localStream);
    if (trickle) {
      pc.onicecandidate = (e) => {
        if (!e.candidate) return;
        sendSignal(id, { type: 'candidate', candidate: { candidate: e.candidate.candidate, sdpMLineIndex: e.candidate.sdpMLineIndex, sdpMid: e.candidate.sdpMid } });
      };
    }
    pc.onconnectionstatechange = () => { peer.state = pc.connectionState; render(); };
    pc.ontrack = (e) => {
      // First audio per participant (benchmarks): a remote track unmutes with its first RTP packet.
      const first = () => { status.firstAudioAt = status.firstAudioAt || {}; status.firstAudioAt[id] = status.firstAudioAt[id] || Date.now(); };
      if (!e.track.muted) first(); else e.track.addEventListener('unmute', first, { once: true });
      attachRemote(id, peer, e.streams[0] || new MediaStream([e.track]));
    };
    return peer;
  }

  function closePeer(id) {
    const peer = peers.get(id);
    if (!peer) return;
    peers.delete(id);
    try { peer.pc.close(); } catch {}
    if (peer.timer) clearInterval(peer.timer);
    if (peer.audio) peer.audio.remove();
    delete status.peers[id];
    render();
  }

  function sendSignal(to, data) {
    log('send', data.type, 'to', to);
    send({ 'тип': 'webrtc-signal', 'от': myId, 'к': to, 'комната': roomId, 'данные': data });
  }

  function gathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => { if (pc.iceGatheringState === 'complete') { pc.removeEventListener('icegatheringstatechange', check); resolve(); } };
      pc.addEventListener('icegatheringstatechange', check);
      setTimeout(resolve, 3000);
    });
  }

  async function offer(id, peer) {
    const pc = peer.pc;
    try {
      peer.makingOffer = true;
      await pc.setLocalDescription(await pc.createOffer());
      if (!trickle) await gathered(pc);
      if (peers.get(id) !== peer || pc.signalingState !== 'have-local-offer') return;
      sendSignal(id, { type: 'offer', sdp: pc.localDescription.sdp });
    } finally {
      peer.makingOffer = false;
    }
  }

  async function onSignal(from, data) {
    log('recv', data.type, 'from', from, localStream ? '' : '(no microphone yet: dropped)');
    if (!localStream) return; // like the existing browsers: no offers before the microphone is open
    let peer = peers.get(from);
    if (data.type === 'offer' || data.type === 'answer') {
      if (!peer) peer = makePeer(from);
      if (data.type === 'offer') {
        const collision = peer.makingOffer || peer.pc.signalingState !== 'stable';
        peer.ignoreOffer = !peer.polite && collision;
        if (collision) status.glares = (status.glares || 0) + 1;
        if (peer.ignoreOffer) { log('glare: ignoring offer from', from); return; }
        if (collision) {
          // Polite side of a glare: drop our half-made offer and answer on a fresh connection
          // (a rollback in the middle of ICE gathering can stall gathering in Chromium).
          log('glare: yielding to offer from', from);
          const pending = peer.pending;
          closePeer(from);
          peer = makePeer(from);
          peer.pending = pending;
        }
        const pc = peer.pc;
        await pc.setRemoteDescription({ type: 'offer', sdp: data.sdp });
        await flushCandidates(peer);
        await pc.setLocalDescription(await pc.createAnswer());
        if (!trickle) await gathered(pc);
        if (peers.get(from) !== peer) return;
        sendSignal(from, { type: 'answer', sdp: pc.localDescription.sdp });
      } else {
        const pc = peer.pc;
        if (pc.signalingState !== 'have-local-offer') { log('stray answer from', from); return; }
        await pc.setRemoteDescription({ type: 'answer', sdp: data.sdp });
        await flushCandidates(peer);
      }
    } else if (data.type === 'candidate' && data.candidate) {
      if (!peer) return;
      if (!peer.pc.remoteDescription) { peer.pending.push(data.candidate); return; }
      try { await peer.pc.addIceCandidate(data.candidate); } catch (e) { if (!peer.ignoreOffer) log('candidate failed', e); }
    } else if (data.type === 'renegotiate' && peer) {
      offer(from, peer).catch(() => {});
    }
  }

  async function flushCandidates(peer) {
    const list = peer.pending; peer.pending = [];
    for (const c of list) { try { await peer.pc.addIceCandidate(c); } catch {} }
  }

  function attachRemote(id, peer, stream) {
    if (peer.audio) return;
    const el = document.createElement('audio');
    el.autoplay = true; el.srcObject = stream;
    $('audio').appendChild(el);
    el.play().catch(() => {});
    peer.audio = el;
    audioCtx = audioCtx || new AudioContext();
    const src = audioCtx.createMediaStreamSource(stream);
    const an = audioCtx.createAnalyser();
    an.fftSize = 4096;
    src.connect(an);
    const bins = new Float32Array(an.frequencyBinCount);
    const wave = new Float32Array(an.fftSize);
    peer.timer = setInterval(() => {
      an.getFloatFrequencyData(bins);
      let best = 0, bestDb = -Infinity;
      for (let i = 2; i < bins.length; i++) if (bins[i] > bestDb) { bestDb = bins[i]; best = i; }
      an.getFloatTimeDomainData(wave);
      let sum = 0;
      for (const v of wave) sum += v * v;
      peer.level = Math.sqrt(sum / wave.length);
      peer.dominantHz = peer.level > 0.001 ? Math.round(best * audioCtx.sampleRate / an.fftSize) : 0;
      updateStatus();
    }, 250);
  }

  // What the other side reports about the audio this page sends (the report blocks of its RTCP
  // receiver or sender reports, as getStats' remote-inbound-rtp): loss, jitter, round-trip time and
  // how many reports carried one.
  function collectRemoteInbound() {
    for (const [, p] of peers) {
      p.pc.getStats().then((report) => {
        for (const s of report.values()) {
          if (s.type !== 'remote-inbound-rtp' || s.kind !== 'audio') continue;
          p.remoteInbound = { packetsLost: s.packetsLost, fractionLost: s.fractionLost, jitter: s.jitter, roundTripTime: s.roundTripTime, roundTripTimeMeasurements: s.roundTripTimeMeasurements };
        }
      }).catch(() => {});
    }
  }

  function updateStatus() {
    status.peers = {};
    for (const [id, p] of peers) {
      status.peers[id] = { state: p.state, ice: p.pc.iceConnectionState, signaling: p.pc.signalingState, gathering: p.pc.iceGatheringState, dominantHz: p.dominantHz, level: Number(p.level.toFixed(4)), remoteInbound: p.remoteInbound };
    }
    // What the participants list shows: who is speaking and whose microphone is on.
    status.speaking = {};
    status.microphones = {};
    for (const p of participants) {
      if (p.id === myId) continue;
      status.speaking[p.id] = !!p['говорит'];
      status.microphones[p.id] = p['микрофон_включен'] !== false;
      // Remember that a participant was seen speaking at least once (speaking is brief for tests to catch).
      if (p['говорит']) { status.seenSpeaking = status.seenSpeaking || {}; status.seenSpeaking[p.id] = true; }
    }
  }

  // --- test commands -------------------------------------------------------------------------

  // Starts over with `to` on a fresh RTCPeerConnection (new ICE credentials and DTLS certificate), as a
  // browser whose connection broke does, without leaving the room.
  function reoffer(to) {
    if (!peers.has(to)) return;
    closePeer(to);
    const peer = makePeer(to);
    offer(to, peer).catch((e) => log('offer failed', to, String(e)));
  }

  // Hostile signals to `to`: broken SDP, an offer without DTLS-SRTP, one with no codec in common, a
  // small flood of broken offers and garbage candidates. The receiver must refuse them and keep going.
  function sendGarbage(to) {
    const peer = peers.get(to);
    const sdp = peer && peer.pc.localDescription ? peer.pc.localDescription.sdp : '';
    sendSignal(to, { type: 'offer', sdp: 'v=0\r\nthis is not SDP\r\n' });
    if (sdp) {
      sendSignal(to, { type: 'offer', sdp: sdp.replace(/^a=fingerprint:.*\r\n/gm, '') });
      const noCodec = sdp.replace(/^(m=audio \d+ \S+) [^\r\n]*/m, '$1 96').replace(/^a=(rtpmap|fmtp|rtcp-fb):.*\r\n/gm, '') + 'a=rtpmap:96 x-unknown/8000\r\n';
      sendSignal(to, { type: 'offer', sdp: noCodec });
    }
    for (let i = 0; i < 20; i++) sendSignal(to, { type: 'offer', sdp: 'v=0\r\no=- ' + i + ' 0 IN IP4 0.0.0.0\r\nm=audio 9 RTP/SAVPF 0\r\n' });
    for (let i = 0; i < 5; i++) sendSignal(to, { type: 'candidate', candidate: { candidate: 'candidate:garbage ' + i, sdpMLineIndex: 0, sdpMid: '0' } });
    status.garbageSent = (status.garbageSent || 0) + 1;
  }

  // --- view ----------------------------------------------------------------------------------

  function showRoom() {
    $('join').hidden = true; $('roomView').hidden = false;
    $('roomTitle').textContent = roomName;
  }

  function render() {
    updateStatus();
    const ul = $('participants');
    ul.innerHTML = '';
    for (const p of participants) {
      const li = document.createElement('li');
      if (p['говорит']) li.className = 'speaking';
      const name = p['имя'] || p.id;
      const peer = peers.get(p.id);
      const state = p.id === myId ? 'вы' : (peer ? peer.state : 'new');
      li.innerHTML = `<div class="avatar"></div><div class="who"><div class="n"></div><div class="s"></div></div>
        <span class="mic"></span><span class="state"></span>`;
      li.querySelector('.avatar').textContent = name.slice(0, 1).toUpperCase();
      li.querySelector('.n').textContent = name;
      li.querySelector('.s').textContent = p['говорит'] ? 'говорит' : (peer && peer.dominantHz ? `${peer.dominantHz} Гц` : '');
      li.querySelector('.mic').textContent = p['микрофон_включен'] ? '🎙' : '🔇';
      const st = li.querySelector('.state');
      st.textContent = state; st.classList.add(state);
      ul.appendChild(li);
    }
  }

  $('joinBtn').onclick = () => join();
  $('leaveBtn').onclick = () => leave();
  $('muteBtn').onclick = () => toggleMute();
  connect();

  if (autojoin) {
    const name = q.get('name') || myId;
    status.name = name;
    $('name').value = name;
    const wanted = q.get('room') || 'general';
    const tryJoin = setInterval(() => {
      if (ws && ws.readyState === WebSocket.OPEN) {
        clearInterval(tryJoin);
        const opt = document.createElement('option'); opt.value = wanted; opt.textContent = wanted;
        if (![...$('room').options].some((o) => o.value === wanted)) $('room').appendChild(opt);
        $('room').value = wanted;
        join();
      }
    }, 100);
    setInterval(() => {
      collectRemoteInbound();
      updateStatus();
      const body = JSON.stringify(status);
      console.log('PEERD_STATUS ' + body);
      fetch('/report/' + encodeURIComponent(name), { method: 'POST', headers: { 'content-type': 'application/json' }, body }).catch(() => {});
    }, 1000);
    // ?control=1 (tests): the page polls /report/cmd-<name> for {seq, action} and acts like a person
    // clicking: leave, join, mute, unmute. Each seq runs once.
    if (q.get('control') === '1') {
      let lastSeq = 0;
      setInterval(async () => {
        try {
          const r = await fetch('/report/' + encodeURIComponent('cmd-' + name), { cache: 'no-store' });
          if (!r.ok) return;
          const cmd = await r.json();
          if (!cmd || typeof cmd.seq !== 'number' || cmd.seq <= lastSeq) return;
          lastSeq = cmd.seq;
          status.commandsDone = cmd.seq;
          log('test command', cmd.action);
          if (cmd.action === 'leave') leave();
          else if (cmd.action === 'join') join();
          else if (cmd.action === 'mute' && micOn) toggleMute();
          else if (cmd.action === 'unmute' && !micOn) toggleMute();
          else if (cmd.action === 'reoffer') reoffer(cmd.to);
          else if (cmd.action === 'garbage') sendGarbage(cmd.to);
        } catch {}
      }, 500);
    }
  }
})();
