// <RelayConnect>: Relay's connect widget (widget.js, served by your Relay) as a React component.
// It loads widget.js from your Relay once, mounts the widget into a <div> it renders, calls your
// callbacks from the widget's events and unmounts it cleanly. The key is typed into Relay's
// cross-origin frame: neither this component nor your page ever sees it.
import { createElement, useEffect, useRef } from 'react';
const loads = new Map();
function relayBase(relayUrl) {
    return new URL(relayUrl || '/', window.location.href).href.replace(/\/+$/, '');
}
/**
 * Loads `${relayUrl}/widget.js` with one `<script>` tag, however many components ask for it
 * (and not at all if the page already has the widget). Resolves to `window.Relay`.
 */
export function loadRelayWidget(relayUrl) {
    const src = `${relayBase(relayUrl)}/widget.js`;
    const cached = loads.get(src);
    if (cached)
        return cached;
    const loading = new Promise((resolve, reject) => {
        if (window.Relay) {
            resolve(window.Relay);
            return;
        }
        let script = document.querySelector(`script[data-relay-widget="${CSS.escape(src)}"]`);
        if (!script) {
            script = document.createElement('script');
            script.src = src;
            script.async = true;
            script.setAttribute('data-relay-widget', src);
            document.head.appendChild(script);
        }
        const tag = script;
        tag.addEventListener('load', () => {
            if (window.Relay)
                resolve(window.Relay);
            else
                reject(new Error(`${src} loaded but did not define window.Relay`));
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
export function RelayConnect(props) {
    const { appId, registrationToken, relayUrl, theme, lang, accentColor, className, style, id } = props;
    const container = useRef(null);
    // The latest callbacks, so a new function on each render does not re-mount the widget.
    const callbacks = useRef(props);
    callbacks.current = props;
    useEffect(() => {
        let widget = null;
        let active = true;
        const onError = (error) => callbacks.current.onError?.(error);
        loadRelayWidget(relayUrl).then((Relay) => {
            // Unmounted (or the props changed) while widget.js loaded: React 18 strict mode's
            // double mount ends up here for the first one.
            if (!active || !container.current)
                return;
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
            }
            catch (e) {
                onError({ code: 'invalid_options', message: e instanceof Error ? e.message : String(e), recoverable: false });
            }
        }, (e) => {
            if (active) {
                onError({ code: 'script_unavailable', message: e instanceof Error ? e.message : String(e), recoverable: true });
            }
        });
        return () => {
            active = false;
            widget?.unmount();
            widget = null;
        };
    }, [appId, registrationToken, relayUrl, theme, lang, accentColor]);
    return createElement('div', { ref: container, className, style, id, 'data-relay-connect': '' });
}
export default RelayConnect;
