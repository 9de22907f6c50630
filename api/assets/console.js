// The GraphQL console: sends what is typed to /graphql as JSON and shows
// the answer. Same origin only; no cookies (a session token goes in the
// Authorization header when one is given).
"use strict";

function element(id) {
  return document.getElementById(id);
}

async function send(query, variables) {
  const headers = { "Content-Type": "application/json" };
  const token = element("token").value.trim();
  if (token) {
    headers.Authorization = "Bearer " + token;
  }
  const started = performance.now();
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    credentials: "omit",
    body: JSON.stringify({ query, variables }),
  });
  const text = await response.text();
  const took = Math.round(performance.now() - started);
  let shown = text;
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2);
  } catch (_) {
    // Not JSON: shown as it came.
  }
  element("status").textContent = "HTTP " + response.status + " in " + took + " ms";
  element("response").textContent = shown;
}

function variables() {
  const raw = element("variables").value.trim();
  if (!raw) {
    return {};
  }
  return JSON.parse(raw);
}

async function run() {
  let parsed;
  try {
    parsed = variables();
  } catch (error) {
    element("status").textContent = "The variables are not JSON: " + error.message;
    return;
  }
  try {
    await send(element("query").value, parsed);
  } catch (error) {
    element("status").textContent = "The request failed: " + error.message;
  }
}

async function types() {
  element("query").value =
    "{\n  __schema {\n    queryType { name }\n    mutationType { name }\n    types { name kind description }\n  }\n}";
  element("variables").value = "{}";
  await run();
}

document.addEventListener("DOMContentLoaded", () => {
  element("run").addEventListener("click", run);
  element("types").addEventListener("click", types);
  element("query").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
});
