// The today page's figures, pushed by the server (server-sent events), already written
// in the page's language; the words around them come from the page (data-live, data-paused).
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
    live.textContent = live.dataset.live + " " + new Date().toLocaleTimeString(document.documentElement.lang);
  };
  source.onerror = function () { live.textContent = live.dataset.paused; };
})();
