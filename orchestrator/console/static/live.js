// The today page's figures, pushed by the server (server-sent events).
(function () {
  if (!window.EventSource) return;
  var live = document.getElementById("live");
  var source = new EventSource("/today/events");
  source.onmessage = function (event) {
    var figures = JSON.parse(event.data);
    Object.keys(figures).forEach(function (name) {
      var cell = document.querySelector('[data-figure="' + name + '"]');
      if (cell) cell.textContent = figures[name];
    });
    live.textContent = "Live · updated " + new Date().toLocaleTimeString();
  };
  source.onerror = function () { live.textContent = "Live updates paused; reconnecting…"; };
})();
