/* Relay connect UI: the key form inside the widget's cross-origin frame (data-mode="frame") and
 * the hosted /connect page (data-mode="page"). The key leaves this document only in the body of
 * the same-origin POST /v1/connect; the embedding page and native hosts are told
 * {provider, fingerprint} and error codes, never the key. No dependencies, no inline script. */
(function () {
  'use strict';

  var PROTOCOL = 'relay-widget/1';
  var doc = document;
  var root = doc.documentElement;
  var data = root.dataset;
  var mode = data.mode === 'page' ? 'page' : 'frame';
  var params = new URLSearchParams(location.search);

  // The token arrives in the page's query on first load; take it out of the address bar (and so
  // out of history, screenshots and shares) before doing anything else.
  var pageToken = null;
  if (mode === 'page' && params.has('token')) {
    pageToken = params.get('token');
    var clean = new URL(location.href);
    clean.searchParams.delete('token');
    history.replaceState(history.state, '', clean.pathname + clean.search + clean.hash);
  }

  var ALL_STRINGS = window.RelayStrings || {};
  var locale = ALL_STRINGS[root.lang] ? root.lang : 'en';
  var S = ALL_STRINGS[locale] || {};
  var FALLBACK_APP = locale === 'ko' ? '앱' : 'the app';

  var PROVIDERS = {
    openai: { name: 'OpenAI', mark: 'O', hint: 'hint.openai', url: 'https://platform.openai.com/api-keys',
      valid: function (k) { return /^sk-/.test(k) && !/^sk-(ant|or)-/.test(k) && k.length >= 20; } },
    anthropic: { name: 'Anthropic', mark: 'A', hint: 'hint.anthropic', url: 'https://console.anthropic.com/settings/keys',
      valid: function (k) { return /^sk-ant-/.test(k) && k.length >= 20; } },
    google: { name: 'Gemini', mark: 'G', hint: 'hint.google', url: 'https://aistudio.google.com/app/apikey',
      valid: function (k) { return /^AIza/.test(k) && k.length === 39; } },
    groq: { name: 'Groq', mark: 'Gq', hint: 'hint.groq', url: 'https://console.groq.com/keys',
      valid: function (k) { return /^gsk_/.test(k) && k.length >= 20; } },
    mistral: { name: 'Mistral', mark: 'M', hint: 'hint.mistral', url: 'https://console.mistral.ai/api-keys',
      valid: function (k) { return /^[A-Za-z0-9]{32}$/.test(k); } },
    openrouter: { name: 'OpenRouter', mark: 'OR', hint: 'hint.openrouter', url: 'https://openrouter.ai/keys',
      valid: function (k) { return /^sk-or-/.test(k) && k.length >= 20; } },
    'openai-compatible': { name: 'OpenAI-compatible', mark: '{}', hint: 'hint.generic', url: null, baseUrl: true,
      valid: function () { return true; } }
  };
  var ORDER = ['openai', 'anthropic', 'google', 'groq', 'mistral', 'openrouter', 'openai-compatible'];

  var state = {
    token: null,
    appName: data.appName || '',
    providers: [],
    locked: null,
    provider: null,
    busy: false,
    done: false
  };

  // ---------------------------------------------------------------- strings, DOM, icons

  function t(key, vars) {
    var s = S[key] != null ? S[key] : key;
    vars = vars || {};
    return s.replace(/\{(\w+)\}/g, function (m, name) {
      if (name === 'app') return state.appName || FALLBACK_APP;
      return vars[name] != null ? String(vars[name]) : m;
    });
  }

  function info(id) {
    return PROVIDERS[id] || { name: id, mark: id.charAt(0).toUpperCase(), hint: 'hint.generic', url: null,
      valid: function () { return true; } };
  }

  var SVG = 'http://www.w3.org/2000/svg';

  /** Builds an element. Text only ever goes in through textContent. */
  function h(tag, attrs, children) {
    var svg = tag.indexOf('svg:') === 0;
    var el = svg ? doc.createElementNS(SVG, tag.slice(4)) : doc.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v == null || v === false) return;
      if (k === 'text') el.textContent = v;
      else if (k.indexOf('on') === 0) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    });
    (children || []).forEach(function (c) {
      if (c == null || c === false) return;
      el.appendChild(typeof c === 'string' ? doc.createTextNode(c) : c);
    });
    return el;
  }

  var ICONS = {
    lock: [['rect', { x: 5, y: 11, width: 14, height: 10, rx: 2.5 }], ['path', { d: 'M8.5 11V7.5a3.5 3.5 0 0 1 7 0V11' }]],
    check: [['path', { d: 'M5 12.5l4.5 4.5L19 7.5' }]],
    alert: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M12 7.5v5.5' }], ['path', { d: 'M12 16.5v.01' }]],
    clock: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M12 7.5V12l3 2' }]],
    used: [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M8 12.5l2.8 2.8L16.5 9.5' }]],
    shield: [['path', { d: 'M12 3l7 3v5.5c0 4.2-2.9 7.9-7 9.5-4.1-1.6-7-5.3-7-9.5V6l7-3z' }], ['path', { d: 'M9.5 9.5l5 5M14.5 9.5l-5 5' }]],
    link: [['path', { d: 'M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1' }], ['path', { d: 'M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1' }]],
    external: [['path', { d: 'M14 5h5v5' }], ['path', { d: 'M19 5l-8 8' }], ['path', { d: 'M17 14v4a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1h4' }]],
    wifi: [['path', { d: 'M4.5 9.5a11 11 0 0 1 15 0M7.5 12.5a6.5 6.5 0 0 1 9 0M10.5 15.5a2 2 0 0 1 3 0' }], ['path', { d: 'M12 19v.01' }]]
  };

  function icon(name, cls) {
    return h('svg:svg', { viewBox: '0 0 24 24', class: 'icon ' + (cls || ''), 'aria-hidden': 'true', focusable: 'false' },
      ICONS[name].map(function (p) { return h('svg:' + p[0], p[1]); }));
  }

  // ---------------------------------------------------------------- theme

  function hexToRgb(hex) {
    var m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(hex || '');
    if (!m) return null;
    var v = m[1].length === 3 ? m[1].replace(/./g, '$&$&') : m[1];
    return [0, 2, 4].map(function (i) { return parseInt(v.slice(i, i + 2), 16); });
  }

  function luminance(rgb) {
    var c = rgb.map(function (x) { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }

  function contrast(a, b) {
    var x = luminance(a), y = luminance(b);
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  }

  function applyAccent() {
    var rgb = hexToRgb(params.get('accent'));
    if (!rgb) return;
    var hex = '#' + rgb.map(function (x) { return ('0' + x.toString(16)).slice(-2); }).join('');
    var dark = root.dataset.theme === 'dark' ||
      (root.dataset.theme === 'auto' && window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches);
    var surface = dark ? [23, 26, 33] : [255, 255, 255];
    root.style.setProperty('--accent', hex);
    // Text on the accent: white unless the accent is light.
    root.style.setProperty('--accent-fg', contrast(rgb, [255, 255, 255]) >= 3 ? '#ffffff' : '#111318');
    // Accent-coloured text (links) only where it stays readable on the card.
    root.style.setProperty('--accent-text', contrast(rgb, surface) >= 3 ? hex : 'var(--text)');
  }

  // ---------------------------------------------------------------- telling others

  /** Frame mode: the exact parent origin the server checked against the tenant's allowlist. */
  function toParent(msg) {
    if (mode !== 'frame' || !data.parentOrigin || window.parent === window) return;
    msg.protocol = PROTOCOL;
    window.parent.postMessage(msg, data.parentOrigin);
  }

  /** Page mode: every native bridge that is present, and the parent if framed by an allowed origin. */
  function toNative(msg) {
    var payload = { source: 'relay', protocol: PROTOCOL };
    Object.keys(msg).forEach(function (k) { payload[k] = msg[k]; });
    try {
      if (window.ReactNativeWebView && typeof window.ReactNativeWebView.postMessage === 'function') {
        window.ReactNativeWebView.postMessage(JSON.stringify(payload));
      }
    } catch (e) { /* a broken bridge must not stop the others */ }
    try {
      var handlers = window.webkit && window.webkit.messageHandlers;
      if (handlers && handlers.relay) handlers.relay.postMessage(payload);
    } catch (e) { /* as above */ }
    if (window.parent !== window) {
      (data.allowedOrigins || '').split(' ').filter(Boolean).forEach(function (origin) {
        try { window.parent.postMessage(payload, origin); } catch (e) { /* as above */ }
      });
    }
  }

  function tell(msg) {
    if (mode === 'frame') toParent(msg); else toNative(msg);
  }

  function redirectTo(fields) {
    if (!data.redirectUri) return false;
    var url;
    try { url = new URL(data.redirectUri); } catch (e) { return false; }
    Object.keys(fields).forEach(function (k) { url.searchParams.set(k, fields[k]); });
    if (data.state) url.searchParams.set('state', data.state);
    location.replace(url.href);
    return true;
  }

  // ---------------------------------------------------------------- layout

  var main = doc.getElementById('relay');
  var live = h('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true', id: 'relay-live' });
  var alertLive = h('div', { class: 'sr-only', 'aria-live': 'assertive', 'aria-atomic': 'true', id: 'relay-alert' });
  doc.body.appendChild(live);
  doc.body.appendChild(alertLive);

  function announce(text, urgent) {
    var region = urgent ? alertLive : live;
    region.textContent = '';
    // A fresh text node after a tick is announced even when the text repeats.
    setTimeout(function () { region.textContent = text; }, 30);
  }

  function footer() {
    return h('p', { class: 'foot' }, [icon('lock', 'icon-xs'), h('span', { text: t('footer') })]);
  }

  function show(card) {
    main.setAttribute('data-view', card.getAttribute('data-view') === 'form' ? 'form' : 'result');
    main.textContent = '';
    main.appendChild(card);
    main.appendChild(footer());
    main.setAttribute('aria-busy', 'false');
    resized();
  }

  function focusIfOurs(el) {
    // Never pull focus into the frame on load; move it only when the user is already here.
    if (doc.hasFocus()) el.focus({ preventScroll: mode === 'frame' });
  }

  var lastHeight = 0;
  function resized() {
    if (mode !== 'frame') return;
    var height = Math.ceil(main.getBoundingClientRect().height);
    if (height !== lastHeight) {
      lastHeight = height;
      toParent({ type: 'resize', height: height });
    }
  }
  if (window.ResizeObserver) new ResizeObserver(resized).observe(main);

  // ---------------------------------------------------------------- result views

  var TERMINAL = {
    registration_token_used: { icon: 'used', tone: 'warn', key: 'error.used' },
    registration_token_expired: { icon: 'clock', tone: 'warn', key: 'error.expired' },
    registration_token_invalid: { icon: 'link', tone: 'danger', key: 'error.invalid' },
    origin_not_allowed: { icon: 'shield', tone: 'danger', key: 'error.origin' },
    app_unknown: { icon: 'shield', tone: 'danger', key: 'error.origin' },
    redirect_uri_not_allowed: { icon: 'shield', tone: 'danger', key: 'error.redirect' },
    token_missing: { icon: 'link', tone: 'danger', key: 'error.missing' }
  };

  function terminal(code) {
    var v = TERMINAL[code] || TERMINAL.registration_token_invalid;
    state.done = true;
    var title = h('h1', { class: 'title', id: 'relay-title', tabindex: '-1', text: t(v.key + '.title') });
    var body = t(v.key + '.body');
    var canReturn = mode === 'page' && data.redirectUri && code !== 'redirect_uri_not_allowed';
    var card = h('section', { class: 'card result', 'data-view': 'error', 'data-code': code, 'aria-labelledby': 'relay-title' }, [
      h('div', { class: 'result-icon tone-' + v.tone }, [icon(v.icon)]),
      title,
      h('p', { class: 'result-body', text: body }),
      canReturn ? h('button', { type: 'button', class: 'secondary', text: t('action.return'),
        onclick: function () { redirectTo({ status: 'error', error: code }); } }) : null
    ]);
    show(card);
    announce(t(v.key + '.title') + '. ' + body, true);
    focusIfOurs(title);
    tell({ type: 'error', code: code, message: t(v.key + '.title'), recoverable: false });
  }

  /** `cap`: the monthly cap in dollars the user set with the key, or null. */
  function success(provider, fingerprint, cap) {
    state.done = true;
    var name = info(provider).name;
    var title = h('h1', { class: 'title', id: 'relay-title', tabindex: '-1', text: t('success.title') });
    var willRedirect = mode === 'page' && !!data.redirectUri;
    var card = h('section', { class: 'card result', 'data-view': 'success', 'aria-labelledby': 'relay-title' }, [
      h('div', { class: 'result-icon tone-success' }, [icon('check')]),
      title,
      h('p', { class: 'result-body', text: t('success.body', { provider: name }) }),
      h('dl', { class: 'summary' }, [
        h('div', {}, [h('dt', { text: t('success.provider') }), h('dd', {}, [
          h('span', { class: 'mark mark-sm', 'data-provider': provider, 'aria-hidden': 'true', text: info(provider).mark }),
          h('span', { text: name })])]),
        h('div', {}, [h('dt', { text: t('success.key') }), h('dd', {}, [h('code', { class: 'fingerprint', id: 'relay-fingerprint', text: fingerprint })])]),
        cap == null ? null : h('div', {}, [h('dt', { text: t('success.cap') }),
          h('dd', { id: 'relay-cap-summary', text: t('success.capValue', { amount: USD.format(cap) }) })])
      ]),
      mode === 'page' ? h('p', { class: 'result-note', text: t(willRedirect ? 'success.redirecting' : 'success.close') }) : null
    ]);
    show(card);
    var capText = cap == null ? '' : ' ' + t('success.cap') + ': ' + t('success.capValue', { amount: USD.format(cap) }) + '.';
    announce(t('success.title') + '. ' + t('success.body', { provider: name }) + capText);
    focusIfOurs(title);
    tell({ type: 'success', provider: provider, fingerprint: fingerprint });
    if (willRedirect) {
      setTimeout(function () { redirectTo({ status: 'connected', provider: provider, fingerprint: fingerprint }); }, 700);
    }
  }

  /** Describe failed for a reason that a retry may fix (network, 5xx). */
  function unreachable(message) {
    var title = h('h1', { class: 'title', id: 'relay-title', tabindex: '-1', text: message });
    show(h('section', { class: 'card result', 'data-view': 'error', 'data-code': 'network_error', 'aria-labelledby': 'relay-title' }, [
      h('div', { class: 'result-icon tone-danger' }, [icon('wifi')]),
      title,
      h('button', { type: 'button', class: 'secondary', text: t('action.retry'), onclick: load })
    ]));
    announce(message, true);
    tell({ type: 'error', code: 'network_error', message: message, recoverable: true });
  }

  // ---------------------------------------------------------------- the form

  var els = {};

  function form() {
    var p = state.provider;
    var picker;
    if (state.locked) {
      picker = h('div', { class: 'locked', id: 'relay-provider' }, [
        h('span', { class: 'sr-only', text: t('provider.legend') + ': ' }),
        h('span', { class: 'mark', 'data-provider': p, 'aria-hidden': 'true', text: info(p).mark }),
        h('span', { class: 'locked-name', text: info(p).name }),
        h('span', { class: 'pill' }, [icon('lock', 'icon-xs'), h('span', { text: t('provider.locked') })])
      ]);
    } else {
      picker = h('fieldset', { class: 'providers' }, [
        h('legend', { class: 'label', text: t('provider.legend') }),
        h('div', { class: 'tiles' }, state.providers.map(function (id) {
          var inputId = 'relay-p-' + id;
          return h('div', { class: 'tile' }, [
            h('input', { type: 'radio', name: 'provider', id: inputId, value: id, checked: id === p,
              onchange: function () { select(id); } }),
            h('label', { for: inputId }, [
              h('span', { class: 'mark', 'data-provider': id, 'aria-hidden': 'true', text: info(id).mark }),
              h('span', { class: 'tile-name', text: info(id).name })
            ])
          ]);
        }))
      ]);
    }

    els.baseUrl = h('input', { id: 'relay-base-url', type: 'url', inputmode: 'url', autocomplete: 'off',
      spellcheck: 'false', autocapitalize: 'off', placeholder: 'https://', 'aria-describedby': 'relay-base-url-hint' });
    els.baseUrlField = h('div', { class: 'field', hidden: !info(p).baseUrl }, [
      h('label', { class: 'label', for: 'relay-base-url', text: t('baseUrl.label') }),
      h('div', { class: 'input-wrap' }, [els.baseUrl]),
      h('p', { class: 'hint', id: 'relay-base-url-hint', text: t('baseUrl.hint') })
    ]);

    els.key = h('input', {
      id: 'relay-key', name: 'relay-api-key', type: 'password', autocomplete: 'off', spellcheck: 'false',
      autocapitalize: 'off', autocorrect: 'off', 'data-1p-ignore': 'true', 'data-lpignore': 'true',
      'data-bwignore': 'true', placeholder: t('key.placeholder'), 'aria-describedby': 'relay-key-hint relay-key-error',
      maxlength: '600', oninput: onKeyInput
    });
    els.toggle = h('button', { type: 'button', class: 'toggle', 'aria-controls': 'relay-key', 'aria-pressed': 'false',
      'aria-label': t('key.showLabel'), text: t('key.show'), onclick: toggleVisibility });
    els.keyWrap = h('div', { class: 'input-wrap' }, [els.key, els.toggle]);
    els.keyLabel = h('label', { class: 'label', for: 'relay-key' });
    els.help = h('a', { class: 'help', target: '_blank', rel: 'noopener noreferrer' });
    els.hint = h('p', { class: 'hint', id: 'relay-key-hint' });
    els.error = h('p', { class: 'field-error', id: 'relay-key-error', hidden: true });
    els.suggest = h('div', { class: 'suggest', hidden: true });
    els.cap = h('input', {
      id: 'relay-cap', name: 'relay-monthly-cap', type: 'text', inputmode: 'decimal', autocomplete: 'off',
      spellcheck: 'false', autocapitalize: 'off', autocorrect: 'off', maxlength: '20', placeholder: t('cap.placeholder'),
      'aria-describedby': 'relay-cap-unit relay-cap-hint relay-cap-error', oninput: onCapInput
    });
    els.capWrap = h('div', { class: 'input-wrap amount', onmousedown: focusCap }, [
      h('span', { class: 'affix affix-before', 'aria-hidden': 'true', text: '$' }),
      els.cap,
      h('span', { class: 'affix affix-after', 'aria-hidden': 'true', text: t('cap.unit') })
    ]);
    els.capHint = h('p', { class: 'hint', id: 'relay-cap-hint', text: t('cap.hint') });
    els.capError = h('p', { class: 'field-error', id: 'relay-cap-error', hidden: true });
    els.banner = h('div', { class: 'banner', id: 'relay-banner', hidden: true });
    els.submitLabel = h('span', { text: t('submit') });
    els.submit = h('button', { type: 'submit', class: 'primary', id: 'relay-submit' }, [els.submitLabel]);

    els.form = h('form', { id: 'relay-form', novalidate: true, 'aria-labelledby': 'relay-title', onsubmit: onSubmit }, [
      picker,
      els.baseUrlField,
      h('div', { class: 'field' }, [
        h('div', { class: 'label-row' }, [els.keyLabel, els.help]),
        els.keyWrap,
        els.hint,
        els.error,
        els.suggest
      ]),
      h('div', { class: 'field cap' }, [
        h('label', { class: 'label', for: 'relay-cap', text: t('cap.label') }),
        els.capWrap,
        h('span', { class: 'sr-only', id: 'relay-cap-unit', text: t('cap.unitLabel') }),
        els.capHint,
        els.capError
      ]),
      els.banner,
      els.submit,
      h('p', { class: 'secure' }, [icon('lock', 'icon-xs'), h('span', { text: t('secure') })])
    ]);

    var appName = state.appName || FALLBACK_APP;
    var card = h('section', { class: 'card', 'data-view': 'form' }, [
      h('header', { class: 'head' }, [
        h('div', { class: 'app' }, [
          h('span', { class: 'app-mark', 'aria-hidden': 'true', text: appName.trim().charAt(0).toUpperCase() || 'R' }),
          h('span', { class: 'app-name', text: appName })
        ]),
        h('h1', { class: 'title', id: 'relay-title', tabindex: '-1', text: t('heading') }),
        h('p', { class: 'intro', text: t('intro') })
      ]),
      els.form
    ]);
    show(card);
    select(p);
  }

  function select(id) {
    state.provider = id;
    var p = info(id);
    els.keyLabel.textContent = t('key.label', { provider: p.name });
    if (p.url) {
      els.help.hidden = false;
      els.help.href = p.url;
      els.help.textContent = '';
      els.help.appendChild(doc.createTextNode(t('key.where')));
      els.help.appendChild(icon('external', 'icon-xs'));
      els.help.appendChild(h('span', { class: 'sr-only', text: ' ' + t('key.newTab') }));
    } else {
      els.help.hidden = true;
      els.help.removeAttribute('href');
    }
    els.baseUrlField.hidden = !p.baseUrl;
    clearFieldError();
    hideBanner();
    onKeyInput();
  }

  function guess(k) {
    if (/^sk-ant-/.test(k)) return 'anthropic';
    if (/^sk-or-/.test(k)) return 'openrouter';
    if (/^gsk_/.test(k)) return 'groq';
    if (/^AIza/.test(k)) return 'google';
    if (/^sk-/.test(k)) return 'openai';
    return null;
  }

  function wellFormed(id, k) {
    return k.length > 0 && k.length <= 512 && /^[A-Za-z0-9_-]+$/.test(k) && info(id).valid(k);
  }

  function onKeyInput() {
    var k = els.key.value.trim();
    var p = info(state.provider);
    if (!els.error.hidden) clearFieldError();
    els.suggest.hidden = true;
    els.suggest.textContent = '';
    els.hint.textContent = '';
    els.hint.className = 'hint';
    var other = guess(k);
    if (k && wellFormed(state.provider, k) && (!other || other === state.provider || !PROVIDERS[other] || state.provider === 'openai-compatible')) {
      els.hint.className = 'hint hint-ok';
      els.hint.appendChild(icon('check', 'icon-xs'));
      els.hint.appendChild(h('span', { text: t('hint.ok', { provider: p.name }) }));
      resized();
      return;
    }
    els.hint.appendChild(h('span', { text: t(p.hint) }));
    if (k && other && other !== state.provider && !state.locked && state.providers.indexOf(other) >= 0 &&
        state.provider !== 'openai-compatible') {
      els.suggest.hidden = false;
      els.suggest.appendChild(h('span', { text: t('hint.other', { provider: info(other).name }) }));
      els.suggest.appendChild(h('button', { type: 'button', class: 'link-button', text: t('hint.switch', { provider: info(other).name }),
        onclick: function () {
          var radio = doc.getElementById('relay-p-' + other);
          if (radio) radio.checked = true;
          select(other);
          els.key.focus();
        } }));
    }
    resized();
  }

  function toggleVisibility() {
    var showing = els.key.type === 'text';
    els.key.type = showing ? 'password' : 'text';
    els.toggle.textContent = t(showing ? 'key.show' : 'key.hide');
    els.toggle.setAttribute('aria-label', t(showing ? 'key.showLabel' : 'key.hideLabel'));
    els.toggle.setAttribute('aria-pressed', showing ? 'false' : 'true');
  }

  /** Shows `text` under `field` ('key', 'baseUrl' or 'cap'), marks it invalid and focuses it. */
  function fieldError(text, field) {
    var cap = field === 'cap', baseUrl = field === 'baseUrl';
    var error = cap ? els.capError : els.error;
    var wrap = cap ? els.capWrap : baseUrl ? els.baseUrl.parentNode : els.keyWrap;
    var input = cap ? els.cap : baseUrl ? els.baseUrl : els.key;
    error.textContent = '';
    error.appendChild(icon('alert', 'icon-xs'));
    error.appendChild(h('span', { text: text }));
    error.hidden = false;
    if (cap) {
      els.capHint.hidden = true;
    } else {
      els.hint.hidden = !baseUrl;
      els.suggest.hidden = true;
    }
    wrap.classList.add('invalid');
    input.setAttribute('aria-invalid', 'true');
    announce(text, true);
    input.focus();
    resized();
  }

  function clearFieldError() {
    els.error.hidden = true;
    els.error.textContent = '';
    els.hint.hidden = false;
    els.keyWrap.classList.remove('invalid');
    els.baseUrl.parentNode.classList.remove('invalid');
    els.key.removeAttribute('aria-invalid');
    els.baseUrl.removeAttribute('aria-invalid');
  }

  function clearCapError() {
    els.capError.hidden = true;
    els.capError.textContent = '';
    els.capHint.hidden = false;
    els.capWrap.classList.remove('invalid');
    els.cap.removeAttribute('aria-invalid');
  }

  function onCapInput() {
    if (!els.capError.hidden) {
      clearCapError();
      resized();
    }
  }

  /** A click on the "$" or "per month" beside the amount puts the caret in it. */
  function focusCap(event) {
    if (event.target === els.cap) return;
    event.preventDefault();
    els.cap.focus();
  }

  /**
   * The end user's own monthly cap as typed: empty is no cap (null); otherwise whole dollars and
   * up to two decimals, with a point or a comma ("5", "12.50", "0,05", "$5"); anything else
   * (a sign, "1,000", letters) is undefined. The upper bound is the server's (invalid_amount).
   */
  function parseCap(raw) {
    var s = raw.replace(/[\uFF10-\uFF19\uFF0C\uFF0E\uFF04]/g, function (c) {
      return String.fromCharCode(c.charCodeAt(0) - 0xFEE0); // full-width digits, "，", "．", "＄" from an IME
    }).replace(/\s+/g, '').replace(/^\$/, '');
    if (!s) return null;
    var m = /^(\d*)(?:[.,](\d{0,2}))?$/.exec(s);
    if (!m || !/\d/.test(s)) return undefined;
    return Number((m[1] || '0') + '.' + (m[2] || '0'));
  }

  var USD = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2 });

  function banner(text) {
    els.banner.textContent = '';
    els.banner.appendChild(icon('alert', 'icon-sm'));
    els.banner.appendChild(h('span', { text: text }));
    els.banner.hidden = false;
    announce(text, true);
    resized();
  }

  function hideBanner() {
    els.banner.hidden = true;
    els.banner.textContent = '';
  }

  function setBusy(busy) {
    state.busy = busy;
    els.submit.setAttribute('aria-disabled', busy ? 'true' : 'false');
    els.form.setAttribute('aria-busy', busy ? 'true' : 'false');
    els.key.readOnly = busy;
    els.cap.readOnly = busy;
    els.submit.textContent = '';
    if (busy) {
      els.submit.appendChild(h('span', { class: 'spinner', 'aria-hidden': 'true' }));
      els.submit.appendChild(h('span', { text: t('submitting', { provider: info(state.provider).name }) }));
      announce(t('submitting', { provider: info(state.provider).name }));
    } else {
      els.submit.appendChild(h('span', { text: t('submit') }));
    }
  }

  function apiUrl(path) {
    // Relative to this page, so a Relay served under a path prefix works too.
    return new URL((mode === 'frame' ? '../' : './') + path, location.href).href;
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (state.busy || state.done) return;
    clearFieldError();
    clearCapError();
    hideBanner();
    var id = state.provider;
    var p = info(id);
    var key = els.key.value.trim();
    if (!key) return fieldError(t('error.empty', { provider: p.name }));
    if (!wellFormed(id, key)) return fieldError(t('error.format', { provider: p.name, hint: t(p.hint) }));
    var body = { registrationToken: state.token, provider: id, apiKey: key };
    if (p.baseUrl) {
      var base = els.baseUrl.value.trim();
      // Only the shape: Relay's SSRF policy decides (https, or http for a server the operator allowed).
      if (!/^https?:\/\/[^\s/]+/i.test(base)) return fieldError(t('error.baseUrl'), 'baseUrl');
      body.baseUrl = base;
    }
    var cap = parseCap(els.cap.value);
    if (cap === undefined) return fieldError(t('error.cap'), 'cap');
    if (cap !== null) body.monthlyCapUsd = cap;
    setBusy(true);
    var res, payload = null;
    try {
      res = await fetch(apiUrl('v1/connect'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
        referrerPolicy: 'no-referrer'
      });
      payload = await res.json().catch(function () { return null; });
    } catch (e) {
      setBusy(false);
      banner(t('error.network'));
      tell({ type: 'error', code: 'network_error', message: t('error.network'), recoverable: true });
      return;
    }
    key = null;
    body = null;
    setBusy(false);
    if (res.ok && payload && typeof payload.fingerprint === 'string') {
      els.key.value = '';
      success(String(payload.provider || id), payload.fingerprint, cap);
      return;
    }
    failed(res.status, payload && payload.error && payload.error.code);
  }

  function failed(status, code) {
    var name = info(state.provider).name;
    var message;
    if (TERMINAL[code]) {
      els.key.value = '';
      return terminal(code);
    }
    switch (code) {
      case 'provider_key_malformed':
        message = t('error.format', { provider: name, hint: t(info(state.provider).hint) });
        fieldError(message);
        break;
      case 'provider_key_rejected':
        message = t('error.rejected', { provider: name });
        fieldError(message);
        break;
      case 'provider_mismatch':
        message = t('error.mismatch', { provider: info(state.locked || state.provider).name });
        fieldError(message);
        break;
      case 'invalid_amount':
        message = t('error.cap');
        fieldError(message, 'cap');
        break;
      case 'provider_unavailable':
        message = t('error.unavailable', { provider: name });
        banner(message);
        break;
      default:
        message = t(status === 429 ? 'error.rateLimited' : 'error.server');
        banner(message);
        code = code || (status === 429 ? 'rate_limited' : 'server_error');
    }
    tell({ type: 'error', code: code, message: message, recoverable: true });
  }

  // ---------------------------------------------------------------- boot

  async function load() {
    main.setAttribute('aria-busy', 'true');
    var res, payload = null;
    try {
      res = await fetch(apiUrl('v1/connect/' + encodeURIComponent(state.token)), {
        credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer'
      });
      payload = await res.json().catch(function () { return null; });
    } catch (e) {
      return unreachable(t('error.network'));
    }
    if (!res.ok || !payload) {
      var code = payload && payload.error && payload.error.code;
      if (TERMINAL[code]) return terminal(code);
      if (res.status === 404) return terminal('registration_token_invalid');
      return unreachable(t(res.status === 429 ? 'error.rateLimited' : 'error.server'));
    }
    // The frame was opened for one app; a token of another app would show one name and send
    // the key to another.
    if (mode === 'frame' && data.appId && payload.appId !== data.appId) return terminal('registration_token_invalid');
    state.appName = typeof payload.appName === 'string' && payload.appName ? payload.appName : state.appName;
    var offered = Array.isArray(payload.providers) ? payload.providers.filter(function (p) { return typeof p === 'string'; }) : [];
    // Known providers in our order first, then any newer ones the server offers.
    state.providers = ORDER.filter(function (p) { return offered.indexOf(p) >= 0; })
      .concat(offered.filter(function (p) { return ORDER.indexOf(p) < 0; }));
    state.locked = typeof payload.provider === 'string' && payload.provider ? payload.provider : null;
    if (state.locked && state.providers.indexOf(state.locked) < 0) state.providers = [state.locked];
    if (!state.providers.length) return unreachable(t('error.server'));
    state.provider = state.locked || state.providers[0];
    form();
  }

  function start() {
    applyAccent();
    doc.title = t('page.title');
    if (data.error) return terminal(data.error);
    if (mode === 'page') {
      if (!pageToken) return terminal('token_missing');
      state.token = pageToken;
      pageToken = null;
      return load();
    }
    if (window.parent === window || !data.parentOrigin) return terminal('origin_not_allowed');
    window.addEventListener('message', function (event) {
      // Only the parent window, only from the origin the server allowed, only our protocol.
      if (event.source !== window.parent || event.origin !== data.parentOrigin) return;
      var msg = event.data;
      if (!msg || typeof msg !== 'object' || msg.protocol !== PROTOCOL) return;
      if (msg.type === 'init' && !state.token && typeof msg.registrationToken === 'string' && msg.registrationToken) {
        state.token = msg.registrationToken;
        load();
      }
    });
    toParent({ type: 'ready' });
    resized();
  }

  start();
})();
