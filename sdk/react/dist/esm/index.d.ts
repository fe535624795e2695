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
    mount(target: Element, options: RelayMountOptions): {
        unmount(): void;
    };
    version: string;
}
declare global {
    interface Window {
        Relay?: RelayWidgetGlobal;
    }
}
/**
 * Loads `${relayUrl}/widget.js` with one `<script>` tag, however many components ask for it
 * (and not at all if the page already has the widget). Resolves to `window.Relay`.
 */
export declare function loadRelayWidget(relayUrl?: string): Promise<RelayWidgetGlobal>;
/** Relay's connect widget. Renders a `<div>` and mounts the widget into it. */
export declare function RelayConnect(props: RelayConnectProps): ReactElement;
export default RelayConnect;
