/*! Relay connect widget v1. Self-hosted, dependency-free.
 *
 *   Relay.mount('#connect', { appId, registrationToken, theme, accentColor, locale, onSuccess, onError })
 *
 * The shell is a closed Shadow DOM, so the host page's CSS cannot restyle it. The key is typed
 * into a cross-origin iframe served by Relay inside that shadow root, so the host page's
 * scripts cannot read it either: they can reach the shadow root, but not into the frame. The
 * registration token goes to the frame by postMessage with Relay's exact origin as the target
 * (never in the frame's URL); messages are checked for source and origin in both directions;
 * the page only ever learns {provider, fingerprint}. */
(function () {
  'use strict';

  var PROTOCOL = 'relay-widget/1';
  var VERSION = '1';
  // Where this script was loaded from: the default Relay to talk to.
  var script = document.currentScript;
  var SCRIPT_BASE = script && script.src ? script.src.replace(/\/widget(\.[\w-]+)?\.js(\?.*)?$/, '') : null;

  var STRINGS = {
    en: {
      title: 'Connect your API key (secure form by Relay)',
      loading: 'Loading the secure form…',
      failedTitle: 'The secure form could not load',
      failedBody: 'Check your connection and try again.',
      retry: 'Try again'
    },
    ko: {
      title: 'API 키 연결 (Relay 보안 입력란)',
      loading: '보안 입력란을 불러오는 중…',
      failedTitle: '보안 입력란을 불러오지 못했습니다',
      failedBody: '인터넷 연결을 확인하고 다시 시도하세요.',
      retry: '다시 시도'
    }
  };

  var CSS = [
    ':host{all:initial!important;display:block!important;width:100%!important;max-width:100%!important;',
    'min-width:0!important;box-sizing:border-box!important;visibility:visible!important;opacity:1!important;',
    'position:relative!important;transform:none!important;filter:none!important;contain:layout paint!important}',
    ':host([hidden]){display:none!important}',
    '*,*::before,*::after{box-sizing:border-box}',
    '.wrap{position:relative;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Inter,Roboto,"Helvetica Neue",',
    'Arial,"Apple SD Gothic Neo","Malgun Gothic","Noto Sans KR",NanumGothic,sans-serif;color:#14171f;text-align:left}',
    '.wrap.dark{color:#eceef3}',
    'iframe{display:block;width:100%;min-width:0;height:0;border:0;margin:0;padding:0;background:transparent;',
    'overflow:hidden;color-scheme:light;transition:height .18s ease}',
    '.wrap.dark iframe{color-scheme:dark}',
    '.wrap.auto iframe{color-scheme:light dark}',
    '.wrap:not(.shown) iframe{position:absolute;top:0;left:0;opacity:0;pointer-events:none}',
    '.placeholder{margin:2px 4px 10px;padding:24px;border:1px solid #e3e6eb;border-radius:14px;background:#fff;',
    'box-shadow:0 1px 2px rgba(20,23,31,.04),0 6px 20px rgba(20,23,31,.06)}',
    '.dark .placeholder{background:#171a21;border-color:#2a2e3a;box-shadow:0 1px 2px rgba(0,0,0,.3)}',
    '.bone{display:block;height:14px;margin-top:14px;border-radius:8px;background:linear-gradient(90deg,#eef0f3,#f6f7f9,#eef0f3);',
    'background-size:200% 100%;animation:s 1.3s ease-in-out infinite}',
    '.dark .bone{background:linear-gradient(90deg,#252935,#1d2029,#252935);background-size:200% 100%}',
    '.bone:first-child{margin-top:0;width:55%;height:22px}.bone.l{width:85%}.bone.t{height:96px}.bone.i{height:44px}.bone.b{height:46px}',
    '@keyframes s{from{background-position:100% 0}to{background-position:-100% 0}}',
    '@media (prefers-reduced-motion:reduce){.bone{animation:none}iframe{transition:none}}',
    '.failed{text-align:center}.failed h2{margin:0;font-size:16px;font-weight:650}.failed p{margin:6px 0 0;color:#5c6474}',
    '.failed svg{display:block;width:44px;height:44px;margin:0 auto 12px;padding:10px;border-radius:50%;',
    'background:#fdf1f3;color:#d92d45;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round}',
    '.dark .failed svg{background:rgba(242,89,110,.12);color:#f2596e}',
    '.dark .failed p{color:#a2aaba}',
    '.failed button{margin-top:16px;min-height:40px;padding:0 16px;border:1px solid #cdd2da;border-radius:10px;',
    'background:transparent;color:inherit;font:inherit;font-weight:600;cursor:pointer}',
    '.failed button:focus-visible{outline:2px solid var(--accent,#5b5bd6);outline-offset:2px}',
    '.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}'
  ].join('');

  function warn(msg) {
    if (window.console && console.error) console.error('Relay: ' + msg);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function alertIcon() {
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    [['circle', { cx: 12, cy: 12, r: 9 }], ['path', { d: 'M12 7.5v5.5M12 16.5v.01' }]].forEach(function (p) {
      var node = document.createElementNS(ns, p[0]);
      Object.keys(p[1]).forEach(function (k) { node.setAttribute(k, p[1][k]); });
      svg.appendChild(node);
    });
    return svg;
  }

  function call(fn, arg) {
    if (typeof fn !== 'function') return;
    try { fn(arg); } catch (e) { setTimeout(function () { throw e; }); }
  }

  function mount(target, options) {
    options = options || {};
    var container = typeof target === 'string' ? document.querySelector(target) : target;
    if (!container || container.nodeType !== 1) throw new TypeError('Relay.mount: no element matches ' + target);
    var token = options.registrationToken;
    if (typeof token !== 'string' || !token) throw new TypeError('Relay.mount: registrationToken is required');
    if (typeof options.appId !== 'string' || !options.appId) throw new TypeError('Relay.mount: appId is required');

    var base = options.apiBase || SCRIPT_BASE;
    var api;
    try { api = new URL(base, location.href); } catch (e) { api = null; }
    if (!api || !/^https?:$/.test(api.protocol)) {
      throw new TypeError('Relay.mount: set apiBase to your Relay URL (it could not be taken from the script tag)');
    }
    var apiOrigin = api.origin;
    var apiRoot = api.origin + api.pathname.replace(/\/+$/, '');
    var theme = options.theme === 'dark' || options.theme === 'auto' ? options.theme : 'light';
    var locale = options.locale === 'ko' || options.locale === 'en' ? options.locale
      : (/^ko\b/i.test(document.documentElement.lang || navigator.language || '') ? 'ko' : 'en');
    var accent = typeof options.accentColor === 'string' && /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(options.accentColor)
      ? options.accentColor : null;
    if (options.accentColor && !accent) warn('accentColor must be a hex colour such as #5b5bd6; using the default.');
    var s = STRINGS[locale];

    var src = new URL(apiRoot + '/widget/frame');
    src.searchParams.set('app', options.appId);
    src.searchParams.set('origin', location.origin);
    src.searchParams.set('theme', theme);
    src.searchParams.set('locale', locale);
    if (accent) src.searchParams.set('accent', accent);
    src.searchParams.set('v', VERSION);

    var host = document.createElement('relay-connect');
    var shadow = host.attachShadow({ mode: 'closed' });
    if ('adoptedStyleSheets' in shadow && window.CSSStyleSheet) {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      shadow.adoptedStyleSheets = [sheet];
    } else {
      shadow.appendChild(el('style', null, CSS));
    }
    var wrap = el('div', 'wrap ' + theme);
    if (accent) wrap.style.setProperty('--accent', accent);
    var placeholder = el('div', 'placeholder');
    placeholder.setAttribute('role', 'status');
    placeholder.appendChild(el('span', 'sr', s.loading));
    ['', 'l', 't', 'i', 'b'].forEach(function (c) {
      var b = el('span', 'bone ' + c);
      b.setAttribute('aria-hidden', 'true');
      placeholder.appendChild(b);
    });
    var frame = document.createElement('iframe');
    frame.title = s.title;
    frame.setAttribute('referrerpolicy', 'no-referrer');
    frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox');
    frame.setAttribute('allow', '');
    frame.setAttribute('scrolling', 'no');
    wrap.appendChild(placeholder);
    wrap.appendChild(frame);
    shadow.appendChild(wrap);

    var ready = false;
    var loadTimer = null;
    var failedView = null;

    function failed() {
      if (ready || failedView) return;
      warn('the connect form did not load from ' + apiOrigin + '. Check apiBase, that appId is right, and that ' +
        location.origin + ' is one of the app\'s allowed origins (relay tenant update --id … --allowed-origin ' +
        location.origin + ').');
      failedView = el('div', 'placeholder failed');
      failedView.setAttribute('role', 'alert');
      failedView.appendChild(alertIcon());
      failedView.appendChild(el('h2', null, s.failedTitle));
      failedView.appendChild(el('p', null, s.failedBody));
      var retry = el('button', null, s.retry);
      retry.type = 'button';
      retry.addEventListener('click', function () {
        wrap.removeChild(failedView);
        failedView = null;
        placeholder.hidden = false;
        start();
      });
      failedView.appendChild(retry);
      placeholder.hidden = true;
      wrap.insertBefore(failedView, frame);
      call(options.onError, { code: 'frame_unavailable', message: s.failedTitle, recoverable: true });
      dispatch('relay:error', { code: 'frame_unavailable', recoverable: true });
    }

    function start() {
      ready = false;
      clearTimeout(loadTimer);
      // A frame refused by frame-ancestors (or a network error) still fires `load`, just
      // without ever saying `ready`.
      loadTimer = setTimeout(failed, 15000);
      frame.src = src.href;
    }

    frame.addEventListener('load', function () {
      if (ready) return;
      clearTimeout(loadTimer);
      loadTimer = setTimeout(failed, 2500);
    });

    function dispatch(name, detail) {
      try {
        host.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true, composed: true }));
      } catch (e) { /* old browsers: callbacks still run */ }
    }

    function onMessage(event) {
      // Only our frame's window, only Relay's origin, only our protocol.
      if (event.source !== frame.contentWindow || event.origin !== apiOrigin) return;
      var msg = event.data;
      if (!msg || typeof msg !== 'object' || msg.protocol !== PROTOCOL) return;
      switch (msg.type) {
        case 'ready':
          ready = true;
          clearTimeout(loadTimer);
          frame.contentWindow.postMessage({ protocol: PROTOCOL, type: 'init', registrationToken: token }, apiOrigin);
          break;
        case 'resize':
          if (typeof msg.height === 'number' && isFinite(msg.height)) {
            frame.style.height = Math.max(0, Math.min(Math.ceil(msg.height), 4000)) + 'px';
            if (!wrap.classList.contains('shown')) {
              wrap.classList.add('shown');
              placeholder.hidden = true;
            }
          }
          break;
        case 'success': {
          // Only these two strings ever reach the page: never the key.
          var result = { provider: String(msg.provider), fingerprint: String(msg.fingerprint) };
          call(options.onSuccess, result);
          dispatch('relay:success', result);
          break;
        }
        case 'error': {
          var err = { code: String(msg.code), message: String(msg.message || ''), recoverable: msg.recoverable === true };
          call(options.onError, err);
          dispatch('relay:error', err);
          break;
        }
      }
    }

    window.addEventListener('message', onMessage);
    container.appendChild(host);
    start();

    return {
      unmount: function () {
        clearTimeout(loadTimer);
        window.removeEventListener('message', onMessage);
        if (host.parentNode) host.parentNode.removeChild(host);
      }
    };
  }

  window.Relay = Object.freeze({ mount: mount, version: VERSION });
})();
