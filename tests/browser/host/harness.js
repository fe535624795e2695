// Test harness on the host page: mounts the widget and records what the page is told.
window.__relay = { successes: [], errors: [], events: [] };
if (/[?&]dark\b/.test(location.search)) document.documentElement.classList.add('dark');
window.mountWidget = function (options) {
  var slot = document.getElementById('connect');
  slot.textContent = '';
  slot.addEventListener('relay:success', function (e) { window.__relay.events.push(['success', e.detail]); });
  slot.addEventListener('relay:error', function (e) { window.__relay.events.push(['error', e.detail]); });
  var opts = {};
  Object.keys(options).forEach(function (k) { opts[k] = options[k]; });
  opts.onSuccess = function (result) { window.__relay.successes.push(result); };
  opts.onError = function (err) { window.__relay.errors.push(err); };
  window.__widget = window.Relay.mount('#connect', opts);
  return true;
};
