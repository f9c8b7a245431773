// Plays a signed HLS manifest of this server with hls.js (or natively where supported).
(function () {
  "use strict";
  var video = document.getElementById("video");
  var status = document.getElementById("player-status");
  var src = video.dataset.src || "";

  function say(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  if (src.indexOf("/media/") !== 0) {
    say("error", "No playable source.");
    return;
  }
  video.addEventListener("playing", function () { say("playing", "Playing"); });
  video.addEventListener("pause", function () { if (!video.ended) { say("paused", "Paused"); } });
  video.addEventListener("ended", function () { say("ended", "Ended"); });
  video.addEventListener("timeupdate", function () {
    status.dataset.time = String(video.currentTime);
  });
  if (window.Hls && window.Hls.isSupported()) {
    var hls = new window.Hls({ enableWorker: false });
    hls.on(window.Hls.Events.ERROR, function (_event, data) {
      if (data.fatal) { say("error", "Playback error: " + data.details); }
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, function (_event, data) {
      status.dataset.levels = String(data.levels.length);
      video.play();
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
    video.play();
  } else {
    say("error", "This browser cannot play HLS.");
  }
})();
