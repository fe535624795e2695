// The Relay console: one script renders the page the path names (/console/sign-in, /keys,
// /end-users, /members, /invite/<token>) from the JSON API. No inline code, nothing from
// elsewhere; the DOM is built with textContent, never HTML strings.
'use strict';
(function () {
  const S = window.RELAY_CONSOLE_STRINGS.en;
  const t = (key, vars) => (S[key] || key).replace(/\{(\w+)\}/g, (_, k) => (vars && vars[k] != null ? String(vars[k]) : ''));
  const main = document.getElementById('main');
  const statusBox = document.querySelector('.status');
  let csrf = null;
  let me = null;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c != null) el.append(c.nodeType ? c : document.createTextNode(String(c)));
    return el;
  }

  function say(message, isError) {
    statusBox.textContent = message;
    statusBox.classList.toggle('error', Boolean(isError));
  }

  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET' && csrf) headers['x-relay-csrf'] = csrf;
    const res = await fetch('/console/api' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || res.statusText);
      err.status = res.status;
      err.code = data && data.error && data.error.code;
      throw err;
    }
    return data;
  }

  function fail(err) {
    if (err.status === 401) return go('/console/sign-in');
    say(t('error', { message: err.message }), true);
  }

  function go(path) { window.location.assign(path); }

  function when(iso) { return iso ? new Date(iso).toLocaleString() : t('never'); }

  function canWrite(least) {
    const order = { viewer: 0, admin: 1, owner: 2 };
    return me && me.tenant && order[me.tenant.role] >= order[least];
  }

  function page(title, ...content) {
    main.replaceChildren(h('h1', { text: title }), ...content);
    document.title = title + ' · Relay console';
    main.focus();
  }

  function field(id, label, attrs) {
    return h('p', { class: 'field' }, h('label', { for: id, text: label }), h('input', Object.assign({ id, name: id }, attrs)));
  }

  // ---- sign-in and invite ----
  function signInPage() {
    const form = h('form', { class: 'card', novalidate: true },
      field('email', t('email'), { type: 'email', autocomplete: 'username', required: true }),
      field('password', t('password'), { type: 'password', autocomplete: 'current-password', required: true }),
      h('button', { type: 'submit', text: t('sign_in') }));
    const query = new URLSearchParams(window.location.search);
    const prefill = query.get('email');
    if (prefill) form.email.value = prefill;
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const signed = await api('POST', '/sign-in', { email: form.email.value, password: form.password.value });
        csrf = signed.csrfToken;
        go('/console/keys');
      } catch (err) { form.password.value = ''; say(err.status === 401 ? err.message : t('error', { message: err.message }), true); }
    });
    page(t('sign_in_title'), form);
    if (query.has('signed-out')) say(t('signed_out'));
    (prefill ? form.password : form.email).focus();
  }

  function invitePage(token) {
    const form = h('form', { class: 'card', novalidate: true },
      h('p', { text: t('invite_intro') }),
      field('password', t('new_password'), { type: 'password', autocomplete: 'new-password', required: true, minlength: 12 }),
      field('confirm', t('confirm_password'), { type: 'password', autocomplete: 'new-password', required: true }),
      h('button', { type: 'submit', text: t('accept') }));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (form.password.value !== form.confirm.value) return say(t('passwords_differ'), true);
      try {
        const done = await api('POST', '/invites/accept', { token, password: form.password.value });
        say(t('invite_done'));
        // Joined: sign in with the password just set, so the member lands in the console.
        try {
          const signed = await api('POST', '/sign-in', { email: done.email, password: form.password.value });
          csrf = signed.csrfToken;
          go('/console/keys');
        } catch (_) { go('/console/sign-in?email=' + encodeURIComponent(done.email)); }
      } catch (err) { say(t('error', { message: err.message }), true); }
    });
    page(t('invite_title'), form);
  }

  // ---- API keys ----
  async function keysPage() {
    const list = h('div');
    const content = [];
    if (canWrite('admin')) {
      const form = h('form', { class: 'row' },
        field('key-name', t('key_name'), { type: 'text', maxlength: 100 }),
        h('button', { type: 'submit', text: t('create_key') }));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          const created = await api('POST', '/keys', { name: form['key-name'].value || null });
          form['key-name'].value = '';
          showSecret(created.apiKey);
          await render();
        } catch (err) { fail(err); }
      });
      content.push(form);
    } else content.push(h('p', { class: 'hint', text: t('read_only') }));
    const panel = h('section', { class: 'secret', hidden: true, 'aria-labelledby': 'secret-title' });
    function showSecret(secret) {
      const value = h('code', { id: 'new-key', text: secret });
      const copy = h('button', { type: 'button', text: t('copy'), onclick: async () => {
        try { await navigator.clipboard.writeText(secret); say(t('copied')); } catch (_) {
          const range = document.createRange(); range.selectNodeContents(value);
          const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
        }
      } });
      const close = h('button', { type: 'button', class: 'link', text: t('done'), onclick: () => { panel.replaceChildren(); panel.hidden = true; } });
      panel.replaceChildren(h('h2', { id: 'secret-title', text: t('new_key_title') }), h('p', { text: t('new_key_hint') }), h('p', {}, value), h('p', {}, copy, ' ', close));
      panel.hidden = false;
      copy.focus();
    }
    content.push(panel, list);
    async function render() {
      const { data } = await api('GET', '/keys');
      if (!data.length) return list.replaceChildren(h('p', { text: t('no_keys') }));
      const rows = data.map((k) => h('tr', { 'data-key': k.id },
        h('td', {}, h('code', { text: k.display }), k.name ? h('div', { class: 'sub', text: k.name }) : null),
        h('td', { text: when(k.createdAt) }),
        h('td', { text: when(k.lastUsedAt) }),
        h('td', { text: k.revokedAt ? t('revoked') : t('active') }),
        h('td', {}, !k.revokedAt && canWrite('admin') ? h('button', { type: 'button', class: 'danger', 'aria-label': t('revoke') + ' ' + k.display, text: t('revoke'), onclick: async () => {
          if (!window.confirm(t('revoke_confirm', { key: k.display }))) return;
          try { await api('DELETE', '/keys/' + encodeURIComponent(k.id)); say(t('revoked_done')); await render(); } catch (err) { fail(err); }
        } }) : null)));
      list.replaceChildren(table([t('key'), t('created'), t('last_used'), t('state'), ''], rows));
    }
    page(t('keys_title'), ...content);
    await render();
  }

  function table(heads, rows) {
    return h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, heads.map((x) => h('th', { scope: 'col', text: x })))), h('tbody', {}, rows)));
  }

  // ---- end users ----
  async function usersPage() {
    const results = h('div');
    const details = h('section', { class: 'details', hidden: true });
    const more = h('button', { type: 'button', hidden: true, text: t('more') });
    const form = h('form', { class: 'row', role: 'search' },
      field('prefix', t('search_label'), { type: 'search', maxlength: 128 }),
      h('button', { type: 'submit', text: t('search') }));
    let after = null;
    let rows = [];
    async function load(reset) {
      if (reset) { after = null; rows = []; }
      const q = new URLSearchParams({ prefix: form.prefix.value });
      if (after) q.set('after', after);
      const page = await api('GET', '/end-users?' + q.toString());
      after = page.next;
      rows = rows.concat(page.data.map((u) => h('tr', {},
        h('td', {}, h('button', { type: 'button', class: 'link', text: u.label, onclick: () => show(u.label) })),
        h('td', { text: u.paid ? t('paid') : t('free') }),
        h('td', { text: when(u.createdAt) }))));
      results.replaceChildren(rows.length ? table([t('label'), t('tier'), t('created')], rows) : h('p', { text: t('no_users') }));
      more.hidden = !after;
    }
    async function show(label) {
      try {
        const u = await api('GET', '/end-users/' + encodeURIComponent(label));
        const keys = u.providers.length
          ? table([t('provider'), t('fingerprint'), t('status'), t('last_used')], u.providers.map((p) => h('tr', {},
            h('td', { text: p.provider }), h('td', {}, h('code', { text: p.fingerprint })),
            h('td', { text: p.status + (p.statusReason ? ' — ' + p.statusReason : '') }), h('td', { text: when(p.lastUsedAt) }))))
          : h('p', { text: t('no_providers') });
        const erase = canWrite('admin') ? h('button', { type: 'button', class: 'danger', text: t('erase'), onclick: async () => {
          if (!window.confirm(t('erase_confirm', { label: u.label }))) return;
          try { await api('DELETE', '/end-users/' + encodeURIComponent(u.label)); say(t('erased')); details.hidden = true; await load(true); } catch (err) { fail(err); }
        } }) : null;
        details.replaceChildren(h('h2', { id: 'user-title', text: u.label }), h('h3', { text: t('providers') }), keys, erase);
        details.hidden = false;
        details.querySelector('h2').setAttribute('tabindex', '-1');
        details.querySelector('h2').focus();
      } catch (err) { fail(err); }
    }
    form.addEventListener('submit', (e) => { e.preventDefault(); load(true).catch(fail); });
    more.addEventListener('click', () => load(false).catch(fail));
    page(t('users_title'), form, results, more, details);
    await load(true);
  }

  // ---- members ----
  async function membersPage() {
    const list = h('div');
    const content = [];
    const owner = canWrite('owner');
    const link = h('p', { class: 'secret', hidden: true });
    if (owner) {
      const form = h('form', { class: 'row' },
        field('invite-email', t('email'), { type: 'email', required: true }),
        h('p', { class: 'field' }, h('label', { for: 'invite-role', text: t('role') }), roleSelect('invite-role', 'viewer')),
        h('button', { type: 'submit', text: t('invite') }));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          const inv = await api('POST', '/members/invites', { email: form['invite-email'].value, role: form['invite-role'].value });
          link.replaceChildren(t('invite_link', { email: inv.email }), ' ', h('code', { text: inv.inviteUrl }));
          link.hidden = false;
          form['invite-email'].value = '';
        } catch (err) { fail(err); }
      });
      content.push(form, link);
    } else content.push(h('p', { class: 'hint', text: t('read_only') }));
    content.push(list);
    function roleSelect(id, value) {
      const sel = h('select', { id, name: id }, ['owner', 'admin', 'viewer'].map((r) => h('option', { value: r, text: t('role_' + r) })));
      sel.value = value;
      return sel;
    }
    async function render() {
      const { data } = await api('GET', '/members');
      list.replaceChildren(table([t('email'), t('role'), t('created'), ''], data.map((m) => {
        const self = me && m.accountId === me.accountId;
        let role = h('span', { text: t('role_' + m.role) });
        if (owner && !self) {
          role = roleSelect('role-' + m.accountId, m.role);
          role.setAttribute('aria-label', t('change_role', { email: m.email }));
          role.addEventListener('change', async () => {
            try { await api('PATCH', '/members/' + m.accountId, { role: role.value }); await render(); } catch (err) { fail(err); await render(); }
          });
        }
        return h('tr', {}, h('td', { text: m.email }), h('td', {}, role), h('td', { text: when(m.createdAt) }),
          h('td', {}, owner && !self ? h('button', { type: 'button', class: 'danger', text: t('remove'), 'aria-label': t('remove') + ' ' + m.email, onclick: async () => {
            if (!window.confirm(t('remove_confirm', { email: m.email }))) return;
            try { await api('DELETE', '/members/' + m.accountId); await render(); } catch (err) { fail(err); }
          } }) : null));
      })));
    }
    page(t('members_title'), ...content);
    await render();
  }

  // ---- the frame ----
  async function signedIn() {
    try { me = await api('GET', '/me'); } catch (err) { if (err.status === 401) { go('/console/sign-in'); return false; } throw err; }
    csrf = me.csrfToken;
    const top = document.querySelector('.top');
    top.hidden = false;
    const labels = { keys: t('nav_keys'), 'end-users': t('nav_users'), members: t('nav_members') };
    for (const a of top.querySelectorAll('[data-nav]')) {
      a.textContent = labels[a.dataset.nav];
      if (window.location.pathname === '/console/' + a.dataset.nav) a.setAttribute('aria-current', 'page');
    }
    top.querySelector('.who').textContent = me.email + (me.tenant ? ' · ' + me.tenant.name + ' (' + t('role_' + me.tenant.role) + ')' : '');
    const out = document.getElementById('sign-out');
    out.textContent = t('sign_out');
    out.addEventListener('click', async () => {
      try { await api('POST', '/sign-out'); } catch (_) { /* signed out either way */ }
      go('/console/sign-in?signed-out=1');
    });
    return true;
  }

  async function start() {
    const path = window.location.pathname.replace(/\/+$/, '');
    const invite = path.match(/^\/console\/invite\/([^/]+)$/);
    if (invite) return invitePage(decodeURIComponent(invite[1]));
    if (path === '/console/sign-in') return signInPage();
    if (!(await signedIn())) return;
    if (path === '/console/end-users') return usersPage();
    if (path === '/console/members') return membersPage();
    return keysPage();
  }

  start().catch(fail);
})();
