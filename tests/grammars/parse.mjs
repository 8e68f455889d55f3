// Parse PromQL, LogQL and TraceQL with the grammars Grafana's query editors use,
// and report every syntax error.
//
// Lezer parsers never throw on bad input: they recover and mark the broken spots
// with error nodes (type.isError) in the tree. Walking the tree for those nodes is
// how Grafana's own editors find syntax errors, and it is what we do here.
//
// Input (stdin):  JSON list of {"language": "promql"|"logql"|"traceql", "query": "..."}
// Output (stdout): JSON list, same order, of {"errors": [...], "selectors": [...]}:
//   errors    - one message per syntax error; an empty list means the query is valid;
//   selectors - LogQL only: each stream selector `{...}` as a list of matchers
//               {"label", "op", "value"} (value as written, quotes included), so tests
//               can check the labels a query selects on. Empty for other languages.
// Bad input: a one-line message on stderr and exit code 2.

import { parser as promqlParser } from "@prometheus-io/lezer-promql";
import { parser as logqlParser } from "@grafana/lezer-logql";
import { parser as traceqlParser } from "@grafana/lezer-traceql";

const PARSERS = {
  promql: promqlParser,
  logql: logqlParser,
  traceql: traceqlParser,
};

function fail(message) {
  process.stderr.write(`parse.mjs: ${message}\n`);
  process.exit(2);
}

/** Every error node of the tree, as "syntax error at offset N near ...". */
function syntaxErrors(tree, query) {
  const errors = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) {
        const found = query.slice(node.from, Math.max(node.to, node.from + 12));
        const where = found ? `near ${JSON.stringify(found)}` : "at end of query";
        errors.push(`syntax error at offset ${node.from} ${where}`);
      }
    },
  });
  return errors;
}

/** The stream selectors of a LogQL tree: [[{label, op, value}, ...], ...]. */
function streamSelectors(tree, query) {
  const selectors = [];
  tree.iterate({
    enter(node) {
      if (node.name !== "Selector") return;
      const matchers = [];
      // Matchers nest ("a, b" is Matchers(Matchers(a), b)); collect every Matcher below.
      node.node.toTree().iterate({
        enter(inner) {
          if (inner.name !== "Matcher") return;
          const at = (child) => query.slice(node.from + child.from, node.from + child.to);
          const parts = [];
          for (let c = inner.node.firstChild; c; c = c.nextSibling) parts.push(at(c));
          matchers.push({ label: parts[0], op: parts[1], value: parts[2] });
          return false;
        },
      });
      selectors.push(matchers);
      return false;
    },
  });
  return selectors;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

const text = await readStdin();
let items;
try {
  items = JSON.parse(text);
} catch (error) {
  fail(`stdin is not JSON: ${error.message}`);
}
if (!Array.isArray(items)) fail("stdin must be a JSON list of {language, query}");

const results = items.map((item, index) => {
  const parser = PARSERS[item?.language];
  if (!parser) {
    fail(`item ${index}: language must be one of ${Object.keys(PARSERS).join(", ")}`);
  }
  if (typeof item.query !== "string") fail(`item ${index}: query must be a string`);
  const tree = parser.parse(item.query);
  return {
    errors: syntaxErrors(tree, item.query),
    selectors: item.language === "logql" ? streamSelectors(tree, item.query) : [],
  };
});
process.stdout.write(JSON.stringify(results) + "\n");
