// <RelayConnect>: Relay's connect widget (widget.js, served by your Relay) as a React component.
// It loads widget.js from your Relay once, mounts the widget into a <div> it renders, calls your
// callbacks from the widget's events and unmounts it cleanly. The key is typed into Relay's
// cross-origin frame: neither this component nor your page ever sees it.
import { createElement, useEffect, useRef } from 'react';
import type { CSSProperties, ReactElement } from 'react';

/** What `onSuccess` receives: the provider and the key's fingerprint, never the key. */
export interface RelayConnectSuccess {
  provider: string;
  fingerprint: string;
}

/**
 * What `onError` receives. `code` is one of the widget's codes (`registration_token_used`,
 * `registration_token_expired`, `registration_token_invalid`, `provider_key_malformed`,
 * `provider_key_rejected`, `provider_mismatch`, `provider_unavailable`, `invalid_amount`,
 * `network_error`, `rate_limited`, `server_error`, `frame_unavailable`) or `script_unavailable`
 * (widget.js itself did not load from `relayUrl`).
 */
export interface RelayConnectError {
  code: string;
  message: string;
  recoverable: boolean;
}

export type RelayTheme = 'light' | 'dark' | 'auto';
export type RelayLang = 'en' | 'ko';

export interface RelayConnectProps {
  /** The tenant's public app id (`relay tenant create` prints it). */
  appId: string;
  /** An `rrt-` token from your backend (`POST /v1/registration-tokens`); a new one mounts a fresh form. */
  registrationToken: string;
  /** Your Relay's public URL: widget.js is loaded from `${relayUrl}/widget.js`. Default: this page's origin. */
  relayUrl?: string;
  /** Default `light`. */
  theme?: RelayTheme;
  /** Default: the page's `<html lang>`. */
  lang?: RelayLang;
  /** A hex colour such as `#5b5bd6`. */
  accentColor?: string;
  /** The key was accepted and stored: `{ provider, fingerprint }`. */
  onSuccess?: (result: RelayConnectSuccess) => void;
  onError?: (error: RelayConnectError) => void;
  /** For the `<div>` the widget is mounted into. */
  className?: string;
  style?: CSSProperties;
  id?: string;
}

interface RelayMountOptions {
  appId: string;
  registrationToken: string;
  apiBase: string;
  theme?: RelayTheme;
  locale?: RelayLang;
  accentColor?: string;
  onSuccess: (result: RelayConnectSuccess) => void;
  onError: (error: RelayConnectError) => void;
}

/** `window.Relay`, as widget.js defines it. */
export interface RelayWidgetGlobal {
  mount(target: Element, options: RelayMountOptions): { unmount(): void };
  version: string;
}

declare global {
  interface Window {
    Relay?: RelayWidgetGlobal;
  }
}

const loads = new Map<string, Promise<RelayWidgetGlobal>>();

function relayBase(relayUrl: string | undefined): string {
  return new URL(relayUrl || '/', window.location.href).href.replace(/\/+$/, '');
}

/**
 * Loads `${relayUrl}/widget.js` with one `<script>` tag, however many components ask for it
 * (and not at all if the page already has the widget). Resolves to `window.Relay`.
 */
export function loadRelayWidget(relayUrl?: string): Promise<RelayWidgetGlobal> {
  const src = `${relayBase(relayUrl)}/widget.js`;
  const cached = loads.get(src);
  if (cached) return cached;
  const loading = new Promise<RelayWidgetGlobal>((resolve, reject) => {
    if (window.Relay) {
      resolve(window.Relay);
      return;
    }
    let script = document.querySelector<HTMLScriptElement>(`script[data-relay-widget="${CSS.escape(src)}"]`);
    if (!script) {
      script = document.createElement('script');
      script.src = src;
      script.async = true;
      script.setAttribute('data-relay-widget', src);
      document.head.appendChild(script);
    }
    const tag = script;
    tag.addEventListener('load', () => {
      if (window.Relay) resolve(window.Relay);
      else reject(new Error(`${src} loaded but did not define window.Relay`));
    });
    tag.addEventListener('error', () => {
      // Let a later mount try again.
      loads.delete(src);
      tag.remove();
      reject(new Error(`${src} could not be loaded`));
    });
  });
  loads.set(src, loading);
  return loading;
}

/** Relay's connect widget. Renders a `<div>` and mounts the widget into it. */
export function RelayConnect(props: RelayConnectProps): ReactElement {
  const { appId, registrationToken, relayUrl, theme, lang, accentColor, className, style, id } = props;
  const container = useRef<HTMLDivElement | null>(null);
  // The latest callbacks, so a new function on each render does not re-mount the widget.
  const callbacks = useRef(props);
  callbacks.current = props;

  useEffect(() => {
    let widget: { unmount(): void } | null = null;
    let active = true;
    const onError = (error: RelayConnectError) => callbacks.current.onError?.(error);
    loadRelayWidget(relayUrl).then(
      (Relay) => {
        // Unmounted (or the props changed) while widget.js loaded: React 18 strict mode's
        // double mount ends up here for the first one.
        if (!active || !container.current) return;
        try {
          widget = Relay.mount(container.current, {
            appId,
            registrationToken,
            apiBase: relayBase(relayUrl),
            theme,
            locale: lang,
            accentColor,
            onSuccess: (result) => callbacks.current.onSuccess?.(result),
            onError,
          });
        } catch (e) {
          onError({ code: 'invalid_options', message: e instanceof Error ? e.message : String(e), recoverable: false });
        }
      },
      (e: unknown) => {
        if (active) {
          onError({ code: 'script_unavailable', message: e instanceof Error ? e.message : String(e), recoverable: true });
        }
      },
    );
    return () => {
      active = false;
      widget?.unmount();
      widget = null;
    };
  }, [appId, registrationToken, relayUrl, theme, lang, accentColor]);

  return createElement('div', { ref: container, className, style, id, 'data-relay-connect': '' });
}

export default RelayConnect;
