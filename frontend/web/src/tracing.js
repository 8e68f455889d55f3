// OpenTelemetry in the browser: where a click's trace begins.
//
// `npm run build` bundles this file into frontend/src/frontend/static/tracing.js, which
// the page loads before page.js. From then on, every fetch() the page makes opens a
// CLIENT span and sends its context in a W3C `traceparent` header; the frontend's
// server span continues that trace, the dice-roller's continues the frontend's. So a
// click on Roll is the root of one trace across the browser and both services.
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { DocumentLoadInstrumentation } from "@opentelemetry/instrumentation-document-load";
import { FetchInstrumentation } from "@opentelemetry/instrumentation-fetch";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { BatchSpanProcessor, WebTracerProvider } from "@opentelemetry/sdk-trace-web";

// Spans go, as OTLP/HTTP JSON, to the page's own origin: the frontend relays them to
// the collector (frontend/src/frontend/browser.py). No CORS, no collector in public.
const exporter = new OTLPTraceExporter({ url: "/v1/traces" });

const provider = new WebTracerProvider({
  resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: "frontend-web" }),
  // Batches leave a second after a span ends, so a roll's spans reach Tempo soon.
  // The processor also flushes when the page is hidden (tab switched, page closed).
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
});
// The global tracer provider, and the W3C trace context propagator: `traceparent`.
provider.register();

registerInstrumentations({
  instrumentations: [
    // The page load's timings (DNS, fetching the HTML, each script) as spans.
    new DocumentLoadInstrumentation(),
    // A CLIENT span around every fetch(); same-origin calls, like page.js's
    // `/api/roll`, carry `traceparent` (other origins only when listed in
    // propagateTraceHeaderCorsUrls). The exporter's own calls are not traced.
    new FetchInstrumentation({ ignoreUrls: [/\/v1\/traces$/] }),
  ],
});

// Safari may skip `visibilitychange` when a page goes away: flush on `pagehide` too.
window.addEventListener("pagehide", () => provider.forceFlush());
