// The portal: register, log in, recover a password, My applications,
// appointments and refunds, over the GraphQL API at /graphql with the
// browser's session cookie and its CSRF token. One page, a hash router
// (#/login, #/register, #/forgot, #/applications, #/applications/new,
// #/applications/<id>), English and Norwegian (bokmål).
"use strict";

(function () {
  const STRINGS = window.PortalStrings;
  const LANG_KEY = "caseledger.lang";
  const PAGE_SIZE = 10;
  const CSRF_COOKIE = "caseledger_csrf";
  const APPLICATION_FIELDS =
    "id kind relation applicantName status nextStep createdAt submittedAt feePaid refundRequested " +
    "appointment { meetingPoint location startsAt purpose } decision { outcome channel decidedAt }";

  const state = {
    lang: initialLanguage(),
    viewer: undefined, // undefined: not asked yet; null: logged out
    policy: {}, // the password policy, by language
    notice: null, // { key, params } for the next page
    pageNotice: null, // { key, params } shown at the top of this page
    register: { step: 1 },
    forgot: { step: 1 },
    apps: null, // { items, total, hasNext, endCursor, legacy }
    current: null, // the application shown at #/applications/<id>
    feed: null,
    timers: [],
    routeKey: null,
  };

  // ---- words -------------------------------------------------------------

  function initialLanguage() {
    let saved = null;
    try {
      saved = localStorage.getItem(LANG_KEY);
    } catch (_) {
      // Storage may be off; the browser's languages decide.
    }
    if (saved === "en" || saved === "nb") {
      return saved;
    }
    const wanted = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
    for (const tag of wanted) {
      const primary = String(tag).toLowerCase().split("-")[0];
      if (primary === "nb" || primary === "no" || primary === "nn") {
        return "nb";
      }
      if (primary === "en") {
        return "en";
      }
    }
    return "en";
  }

  function t(key, params) {
    const value = STRINGS[state.lang][key];
    if (typeof value === "function") {
      return value(params || {});
    }
    return value === undefined ? key : value;
  }

  function locale() {
    return state.lang === "nb" ? "nb-NO" : "en-GB";
  }

  function formatInstant(value) {
    if (!value) {
      return "";
    }
    return new Intl.DateTimeFormat(locale(), { dateStyle: "long", timeStyle: "short" }).format(new Date(value));
  }

  function formatDuration(totalSeconds) {
    const seconds = Math.max(0, Math.round(totalSeconds));
    return t("duration", { m: Math.floor(seconds / 60), s: seconds % 60 });
  }

  // ---- the DOM -----------------------------------------------------------

  function h(tag, props, ...children) {
    const element = document.createElement(tag);
    let value;
    for (const [key, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) {
        continue;
      }
      if (key === "class") {
        element.className = v;
      } else if (key === "text") {
        element.textContent = v;
      } else if (key === "value") {
        value = v;
      } else if (key.startsWith("on") && typeof v === "function") {
        element.addEventListener(key.slice(2), v);
      } else {
        element.setAttribute(key, v === true ? "" : String(v));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) {
        continue;
      }
      element.append(child instanceof Node ? child : String(child));
    }
    if (value !== undefined) {
      element.value = value;
    }
    return element;
  }

  function $(id) {
    return document.getElementById(id);
  }

  // Polite announcements (status) and assertive ones (errors), through
  // live regions that stay in the page.
  function announce(text, assertive) {
    const region = $(assertive ? "announce-assertive" : "announce-polite");
    region.textContent = "";
    setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  // ---- the API -----------------------------------------------------------

  class Failure extends Error {
    constructor(code, message, extensions) {
      super(message);
      this.code = code;
      this.extensions = extensions || {};
    }
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) {
        return rest.join("=");
      }
    }
    return null;
  }

  async function gql(query, variables) {
    const headers = {
      "Content-Type": "application/json",
      Accept: "application/json",
      "Accept-Language": state.lang,
    };
    const csrf = cookie(CSRF_COOKIE);
    if (csrf) {
      headers["X-CSRF-Token"] = csrf;
    }
    let response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers,
        credentials: "same-origin",
        body: JSON.stringify({ query, variables: variables || {} }),
      });
    } catch (_) {
      throw new Failure("NETWORK", t("error.network"));
    }
    let body;
    try {
      body = await response.json();
    } catch (_) {
      throw new Failure("SERVER", t("error.server"));
    }
    if (body.errors && body.errors.length) {
      const error = body.errors[0];
      const extensions = error.extensions || {};
      if (extensions.code === "UNAUTHENTICATED" && state.viewer) {
        sessionEnded();
      }
      throw new Failure(extensions.code || "ERROR", error.message || t("error.server"), extensions);
    }
    return body.data;
  }

  async function loadViewer() {
    try {
      const data = await gql("{ me { id name email loginMethod } }");
      setViewer(data.me);
    } catch (_) {
      setViewer(null);
    }
  }

  async function loadPolicy() {
    if (!state.policy[state.lang]) {
      const data = await gql(
        "{ passwordPolicy { kind minLength maxLength requiresUppercase requiresLowercase requiresDigit checksCommonPasswords rules ruleCodes } }"
      );
      state.policy[state.lang] = data.passwordPolicy;
    }
    return state.policy[state.lang];
  }

  function setViewer(viewer) {
    state.viewer = viewer;
    if (viewer && !state.feed) {
      state.feed = new window.PortalLive.LiveFeed({
        csrfToken: () => cookie(CSRF_COOKIE),
        onChange: (changed) => applicationChanged(changed.id),
        onPoll: () => refreshShown(),
      });
      state.feed.start();
    } else if (!viewer && state.feed) {
      state.feed.stop();
      state.feed = null;
    }
    if (!viewer) {
      state.apps = null;
      state.current = null;
    }
  }

  function sessionEnded() {
    setViewer(null);
    state.notice = { key: "login.sessionEnded" };
    go("#/login");
  }

  // ---- errors next to their fields ----------------------------------------

  // The words of a refusal: the server's message (in the page's language)
  // with what its extensions add, and the rules a password breaks.
  function describe(failure) {
    const extensions = failure.extensions;
    let text = failure.message;
    let items = [];
    if (typeof extensions.attemptsLeft === "number") {
      text += " " + t("attemptsLeft", { n: extensions.attemptsLeft });
    }
    if (typeof extensions.retryAfterSeconds === "number") {
      text += " " + t("retryIn", { time: formatDuration(extensions.retryAfterSeconds) });
    }
    if (failure.code === "LEGACY_APPLICATION" && extensions.guidance && !text.includes(extensions.guidance)) {
      text += " " + extensions.guidance;
    }
    if (failure.code === "PASSWORD_POLICY" && Array.isArray(extensions.violations)) {
      const policy = state.policy[state.lang];
      text = t("rules.broken", { n: extensions.violations.length });
      items = extensions.violations.map((code) => ruleText(policy, code) || code);
    }
    return { text, items };
  }

  function ruleText(policy, code) {
    if (!policy) {
      return null;
    }
    const index = policy.ruleCodes.indexOf(code);
    return index >= 0 ? policy.rules[index] : null;
  }

  function clearErrors(form) {
    for (const error of form.querySelectorAll(".field-error")) {
      error.textContent = "";
    }
    for (const invalid of form.querySelectorAll("[aria-invalid]")) {
      invalid.removeAttribute("aria-invalid");
    }
    for (const group of form.querySelectorAll(".has-error")) {
      group.classList.remove("has-error");
    }
    const summary = form.querySelector(".error-summary");
    if (summary) {
      summary.replaceChildren();
      summary.hidden = true;
    }
  }

  // Show `failure` next to the field `fieldId` (an input, or a fieldset
  // holding several), in the form's summary, and announce it.
  function showFailure(form, failure, fieldId) {
    clearErrors(form);
    const { text, items } = describe(failure);
    const list = items.length ? h("ul", { class: "rule-list" }, items.map((item) => h("li", { text: item }))) : null;
    const summary = form.querySelector(".error-summary");
    const target = fieldId ? $(fieldId) : null;
    if (summary) {
      summary.hidden = false;
      const message = target
        ? h("a", {
            href: "#" + fieldId,
            text,
            onclick: (event) => {
              event.preventDefault();
              focusField(target);
            },
          })
        : h("p", { text });
      summary.append(h("h2", { text: t("error.summary") }), message);
      if (!target && list) {
        summary.append(list.cloneNode(true));
      }
    }
    if (target) {
      const group = target.closest(".field") || target;
      group.classList.add("has-error");
      const error = $(fieldId + "-error");
      if (error) {
        error.replaceChildren(...[h("span", { text }), list].filter(Boolean));
      }
      for (const control of controlsOf(target)) {
        control.setAttribute("aria-invalid", "true");
      }
      focusField(target);
    } else if (summary) {
      summary.focus();
    }
    announce(text + (items.length ? " " + items.join(" ") : ""), true);
  }

  function controlsOf(target) {
    return target.matches("input, select, textarea") ? [target] : Array.from(target.querySelectorAll("input, select, textarea"));
  }

  function focusField(target) {
    const control = controlsOf(target)[0];
    if (control) {
      control.focus();
    }
  }

  // A submit handler that shows every refusal next to its field and keeps
  // the button from being pressed twice.
  function onSubmit(handler, fieldOf) {
    return async (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      }
      clearErrors(form);
      try {
        await handler(form);
      } catch (failure) {
        if (!(failure instanceof Failure)) {
          throw failure;
        }
        if (form.isConnected) {
          showFailure(form, failure, fieldOf ? fieldOf(failure) : null);
        }
      } finally {
        if (button && button.isConnected) {
          button.disabled = false;
          button.removeAttribute("aria-busy");
        }
      }
    };
  }

  // ---- form parts ---------------------------------------------------------

  function field(options) {
    const hintId = options.hint ? options.id + "-hint" : null;
    const errorId = options.id + "-error";
    const describedBy = [hintId, errorId, options.describedBy].filter(Boolean).join(" ");
    const control =
      options.control ||
      h("input", {
        id: options.id,
        name: options.name || options.id,
        type: options.type || "text",
        autocomplete: options.autocomplete || "off",
        inputmode: options.inputmode,
        maxlength: options.maxlength,
        spellcheck: options.spellcheck,
        autocapitalize: options.autocapitalize,
        required: options.required !== false,
        "aria-describedby": describedBy,
        value: options.value,
        class: options.inputClass,
        oninput: options.oninput,
      });
    if (options.control) {
      control.setAttribute("aria-describedby", describedBy);
    }
    return h(
      "div",
      { class: "field" },
      h("label", { for: options.id, text: options.label }),
      hintId ? h("p", { class: "hint", id: hintId, text: options.hint }) : null,
      h("div", { class: "field-error", id: errorId }),
      control,
      options.after || null
    );
  }

  function select(id, values, labelPrefix, value) {
    return h(
      "select",
      { id, name: id, required: true, value },
      values.map((v) => h("option", { value: v, text: t(labelPrefix + v) }))
    );
  }

  function errorSummary() {
    const summary = h("div", { class: "error-summary", tabindex: "-1", hidden: true });
    return summary;
  }

  // Day, month and year as three number fields (they work the same with
  // every keyboard, screen reader and locale).
  function dateFields(id, legend, hint) {
    const part = (suffix, label, width, max) =>
      h(
        "div",
        { class: "date-part" },
        h("label", { for: id + "-" + suffix, text: label }),
        h("input", {
          id: id + "-" + suffix,
          name: id + "-" + suffix,
          class: "width-" + width,
          inputmode: "numeric",
          maxlength: max,
          autocomplete: "off",
          required: true,
        })
      );
    return h(
      "fieldset",
      { id, class: "field", "aria-describedby": [hint ? id + "-hint" : null, id + "-error"].filter(Boolean).join(" ") },
      h("legend", { text: legend }),
      hint ? h("p", { class: "hint", id: id + "-hint", text: hint }) : null,
      h("div", { class: "field-error", id: id + "-error" }),
      h("div", { class: "date-parts" }, part("day", t("book.day"), 2, 2), part("month", t("book.month"), 2, 2), part("year", t("book.year"), 4, 4))
    );
  }

  function dateValue(id) {
    const pad = (value, length) => String(value).trim().padStart(length, "0");
    return pad($(id + "-year").value, 4) + "-" + pad($(id + "-month").value, 2) + "-" + pad($(id + "-day").value, 2);
  }

  // ---- the password checklist ----------------------------------------------

  // Whether `password` keeps rule `code`: true, false, or null when only
  // the server can tell (a list of common passwords).
  function ruleKept(policy, code, password, email) {
    const length = Array.from(policy.kind === "nist" ? password.normalize("NFKC") : password).length;
    switch (code) {
      case "TOO_SHORT":
        return length >= policy.minLength;
      case "TOO_LONG":
        return length <= policy.maxLength;
      case "MISSING_UPPERCASE":
        return /[A-Z]/.test(password);
      case "MISSING_LOWERCASE":
        return /[a-z]/.test(password);
      case "MISSING_DIGIT":
        return /[0-9]/.test(password);
      case "FORBIDDEN_CHARACTER":
        // Only the seed policy limits the characters.
        return policy.kind === "seed" ? /^[A-Za-z0-9]*$/.test(password) : true;
      case "CONTAINS_EMAIL": {
        if (!email) {
          return null;
        }
        const lower = password.normalize("NFKC").toLowerCase();
        const address = email.trim().toLowerCase();
        const local = address.slice(0, Math.max(0, address.lastIndexOf("@")));
        return lower !== address && !(local.length >= 4 && lower.includes(local));
      }
      default:
        return null;
    }
  }

  function checklist(id, policy) {
    return h(
      "div",
      { class: "checklist", id: id + "-rules" },
      h("p", { class: "checklist-heading", id: id + "-rules-heading", text: t("rules.heading") }),
      h(
        "ul",
        { "aria-labelledby": id + "-rules-heading" },
        policy.rules.map((rule, index) =>
          h(
            "li",
            { "data-rule": policy.ruleCodes[index], class: "rule unknown" },
            h("span", { class: "visually-hidden rule-state", text: t("rules.unknown") + " " }),
            h("span", { class: "rule-text", text: rule })
          )
        )
      )
    );
  }

  function updateChecklist(id, policy, password, email, refused) {
    const list = $(id + "-rules");
    if (!list) {
      return;
    }
    for (const item of list.querySelectorAll("li[data-rule]")) {
      const code = item.dataset.rule;
      let kept = ruleKept(policy, code, password, email);
      if (refused && refused.includes(code)) {
        kept = false;
      }
      const name = kept === null ? "unknown" : kept ? "met" : "unmet";
      item.className = "rule " + name;
      item.querySelector(".rule-state").textContent = t("rules." + name) + " ";
    }
  }

  function passwordField(id, label, policy, email) {
    const input = h("input", {
      id,
      name: id,
      type: "password",
      autocomplete: "new-password",
      required: true,
      spellcheck: "false",
      oninput: () => updateChecklist(id, policy, input.value, email),
    });
    const wrapper = field({
      id,
      label,
      control: input,
      describedBy: id + "-rules",
      after: checklist(id, policy),
    });
    setTimeout(() => updateChecklist(id, policy, input.value, email), 0);
    return wrapper;
  }

  // ---- the code step (registration and recovery) ----------------------------

  function codeStep(flow, kind) {
    const verifyMutation =
      kind === "register"
        ? "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }"
        : "mutation($f: ID!, $c: String!) { verifyRecoveryCode(flowId: $f, code: $c) }";
    const form = h(
      "form",
      {
        id: kind + "-code-form",
        novalidate: true,
        onsubmit: onSubmit(
          async () => {
            const code = $("code").value.trim();
            await gql(verifyMutation, { f: flow.flowId, c: code });
            flow.step = 3;
            announce(t("code.verified"));
            render({ focusHeading: true });
          },
          (failure) => (["CODE_INVALID", "CODE_EXPIRED", "TOO_MANY_ATTEMPTS", "INVALID_INPUT"].includes(failure.code) ? "code" : null)
        ),
      },
      errorSummary(),
      h("p", { text: t("register.codeSent", { email: flow.email }) }),
      field({
        id: "code",
        label: t("code.label"),
        hint: t("code.hint"),
        autocomplete: "one-time-code",
        inputmode: "numeric",
        maxlength: 6,
        inputClass: "width-6",
      }),
      h("p", { id: "code-validity", class: "validity" }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("code.verify") }))
    );
    const resend = h(
      "form",
      {
        id: kind + "-resend-form",
        novalidate: true,
        onsubmit: onSubmit(async () => {
          const data = await gql("mutation($f: ID!) { resendCode(flowId: $f) { flowId expiresAt } }", { f: flow.flowId });
          flow.flowId = data.resendCode.flowId;
          flow.expiresAt = data.resendCode.expiresAt;
          flow.expiredAnnounced = false;
          $("code-sent").textContent = t("code.resent");
          announce(t("code.resent"));
          tickValidity(flow);
        }),
      },
      errorSummary(),
      h("p", { id: "code-sent", role: "status" }),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "secondary", text: t("code.resend") }),
        h("button", {
          type: "button",
          class: "link-button",
          text: t("register.startOver"),
          onclick: () => {
            Object.assign(flow, { step: 1, flowId: null, expiresAt: null });
            render({ focusHeading: true });
          },
        })
      )
    );
    // One countdown, however often the step is drawn.
    stopTimers();
    startTimer(() => tickValidity(flow), 1000);
    setTimeout(() => tickValidity(flow), 0);
    return [form, resend];
  }

  // The code's remaining validity, from the flow's `expiresAt`; the end is
  // announced once.
  function tickValidity(flow) {
    const element = $("code-validity");
    if (!element || !flow.expiresAt) {
      return;
    }
    const left = (new Date(flow.expiresAt).getTime() - Date.now()) / 1000;
    if (left > 0) {
      element.textContent = t("code.validFor", { time: formatDuration(left) });
      element.classList.remove("expired");
    } else {
      element.textContent = t("code.expired");
      element.classList.add("expired");
      if (!flow.expiredAnnounced) {
        flow.expiredAnnounced = true;
        announce(t("code.expired"), true);
      }
    }
  }

  function startTimer(fn, every) {
    state.timers.push(setInterval(fn, every));
  }

  function stopTimers() {
    for (const timer of state.timers) {
      clearInterval(timer);
    }
    state.timers = [];
  }

  // ---- views ---------------------------------------------------------------

  function heading(text) {
    return h("h1", { id: "page-heading", tabindex: "-1", text });
  }

  function noticeBox() {
    const box = h("div", { id: "notice", role: "status", class: "notice" });
    if (state.pageNotice) {
      box.textContent = t(state.pageNotice.key, state.pageNotice.params);
      box.classList.add("shown");
    }
    return box;
  }

  function viewLogin() {
    const idporten = document.documentElement.dataset.idporten === "on";
    const form = h(
      "form",
      {
        id: "login-form",
        novalidate: true,
        onsubmit: onSubmit(
          async () => {
            const data = await gql(
              "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { viewer { id name email loginMethod } } }",
              { e: $("login-email").value.trim(), p: $("login-password").value }
            );
            setViewer(data.login.viewer);
            go("#/applications");
          },
          (failure) =>
            failure.code === "INVALID_INPUT" && failure.extensions.field === "email"
              ? "login-email"
              : failure.code === "INVALID_CREDENTIALS"
                ? "login-password"
                : null
        ),
      },
      errorSummary(),
      field({ id: "login-email", label: t("login.email"), type: "email", autocomplete: "username", spellcheck: "false" }),
      field({ id: "login-password", label: t("login.password"), type: "password", autocomplete: "current-password" }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("login.submit") })),
      h("p", {}, h("a", { href: "#/forgot", id: "forgot-link", text: t("login.forgot") })),
      h("p", {}, t("login.noAccount") + " ", h("a", { href: "#/register", id: "register-link", text: t("login.register") }))
    );
    return [
      heading(t("login.title")),
      noticeBox(),
      h("p", { text: t("login.intro") }),
      form,
      idporten
        ? h(
            "section",
            { class: "idporten", "aria-labelledby": "idporten-heading" },
            h("h2", { id: "idporten-heading", text: t("login.idporten.title") }),
            h("p", { text: t("login.idporten.text") }),
            h("a", { class: "button secondary", id: "idporten-login", href: "/auth/idporten/login", text: t("login.idporten.button") })
          )
        : null,
    ];
  }

  function flowView(kind) {
    const flow = state[kind];
    const register = kind === "register";
    const title = t(register ? "register.title" : "forgot.title");
    const stepText = t((register ? "register" : "forgot") + ".step" + flow.step);
    const policy = state.policy[state.lang];
    let body;
    if (flow.step === 1) {
      body = h(
        "form",
        {
          id: kind + "-email-form",
          novalidate: true,
          onsubmit: onSubmit(
            async () => {
              const email = $("email").value.trim();
              const data = register
                ? (await gql("mutation($e: String!) { startRegistration(email: $e) { flowId expiresAt } }", { e: email })).startRegistration
                : (await gql("mutation($e: String!) { startPasswordRecovery(email: $e) { flowId expiresAt } }", { e: email })).startPasswordRecovery;
              Object.assign(flow, { step: 2, email, flowId: data.flowId, expiresAt: data.expiresAt, expiredAnnounced: false });
              render({ focusHeading: true });
            },
            (failure) => (failure.code === "INVALID_INPUT" || failure.code === "TOO_MANY_ATTEMPTS" ? "email" : null)
          ),
        },
        errorSummary(),
        register ? null : h("p", { text: t("forgot.intro") }),
        field({
          id: "email",
          label: t("login.email"),
          type: "email",
          autocomplete: "email",
          spellcheck: "false",
          hint: register ? t("register.emailHint") : null,
          value: flow.email || "",
        }),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t(register ? "register.send" : "forgot.send") }))
      );
    } else if (flow.step === 2) {
      body = codeStep(flow, kind);
    } else if (!policy) {
      body = h("p", { text: t("loading") });
      loadPolicy().then(() => render(), () => {});
    } else if (register) {
      body = h(
        "form",
        {
          id: "register-complete-form",
          novalidate: true,
          onsubmit: onSubmit(
            async () => {
              const data = await gql(
                "mutation($f: ID!, $p: String!, $n: String!) { completeRegistration(flowId: $f, password: $p, name: $n) { viewer { id name email loginMethod } } }",
                { f: flow.flowId, p: $("new-password").value, n: $("name").value.trim() }
              );
              state.register = { step: 1 };
              setViewer(data.completeRegistration.viewer);
              state.notice = { key: "register.done" };
              go("#/applications");
            },
            (failure) => failureField(failure, { password: "new-password", name: "name" }, "new-password")
          ),
        },
        errorSummary(),
        passwordField("new-password", t("register.password"), policy, flow.email),
        field({ id: "name", label: t("register.name"), autocomplete: "name", maxlength: 200 }),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("register.create") }))
      );
    } else {
      body = h(
        "form",
        {
          id: "forgot-complete-form",
          novalidate: true,
          onsubmit: onSubmit(
            async () => {
              await gql("mutation($f: ID!, $p: String!) { completePasswordRecovery(flowId: $f, newPassword: $p) }", {
                f: flow.flowId,
                p: $("new-password").value,
              });
              state.forgot = { step: 1 };
              setViewer(null);
              state.notice = { key: "login.passwordChanged" };
              go("#/login");
            },
            (failure) => failureField(failure, { password: "new-password", newPassword: "new-password" }, "new-password")
          ),
        },
        errorSummary(),
        passwordField("new-password", t("forgot.password"), policy, flow.email),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("forgot.save") }))
      );
    }
    return [heading(title), h("p", { class: "step", id: "step", text: stepText }), noticeBox(), body];
  }

  function failureField(failure, byField, passwordId) {
    if (failure.code === "PASSWORD_POLICY") {
      const policy = state.policy[state.lang];
      updateChecklist(passwordId, policy, $(passwordId).value, null, failure.extensions.violations || []);
      return passwordId;
    }
    if (failure.extensions.field && byField[failure.extensions.field]) {
      return byField[failure.extensions.field];
    }
    return null;
  }

  function statusBadge(status) {
    return h("span", { class: "status status-" + status.toLowerCase(), "data-status": status, text: t("status." + status) });
  }

  function appointmentText(appointment) {
    if (!appointment) {
      return t("app.noAppointment");
    }
    return (
      t("meeting." + appointment.meetingPoint) +
      ", " +
      appointment.location +
      ", " +
      formatInstant(appointment.startsAt) +
      " (" +
      t("purpose." + appointment.purpose) +
      ")"
    );
  }

  function definitionList(rows) {
    return h(
      "dl",
      { class: "facts" },
      rows.filter(Boolean).map(([term, description, key]) =>
        h("div", { class: "fact", "data-fact": key }, h("dt", { text: term }), h("dd", {}, description))
      )
    );
  }

  function viewApplications() {
    const apps = state.apps;
    const parts = [heading(t("apps.title")), noticeBox(), h("p", { text: t("apps.intro") })];
    if (!apps) {
      parts.push(h("p", { text: t("loading") }));
      return parts;
    }
    if (apps.legacy) {
      parts.push(
        h(
          "section",
          { class: "legacy", id: "legacy", "aria-labelledby": "legacy-heading" },
          h("h2", { id: "legacy-heading", text: t("legacy.title") }),
          h("p", { text: t("legacy.count", { n: apps.legacy.count }) }),
          h("ul", {}, apps.legacy.references.map((reference) => h("li", { text: reference }))),
          h("p", { class: "guidance", text: apps.legacy.guidance })
        )
      );
    }
    parts.push(h("p", {}, h("a", { href: "#/applications/new", class: "button primary", id: "new-application", text: t("apps.new") })));
    if (apps.items.length === 0) {
      parts.push(h("p", { id: "no-applications", text: t("apps.none") }));
      return parts;
    }
    parts.push(h("p", { class: "live-note", text: t("apps.live") }));
    parts.push(
      h(
        "ul",
        { class: "applications", id: "applications" },
        apps.items.map((app) =>
          h(
            "li",
            { class: "application", id: "application-" + app.id, "data-id": app.id, "data-status": app.status },
            h(
              "h2",
              {},
              h("a", { href: "#/applications/" + app.id, id: "open-" + app.id, text: t("kind." + app.kind) + ": " + app.applicantName })
            ),
            definitionList([
              [t("app.status"), statusBadge(app.status), "status"],
              [t("app.nextStep"), app.nextStep, "next-step"],
              [t("app.appointment"), appointmentText(app.appointment), "appointment"],
            ])
          )
        )
      )
    );
    parts.push(h("p", { id: "apps-count", text: t("apps.count", { shown: apps.items.length, total: apps.total }) }));
    if (apps.hasNext) {
      parts.push(
        h("button", {
          type: "button",
          class: "secondary",
          id: "more-applications",
          text: t("apps.more"),
          onclick: async () => {
            const before = state.apps.items.length;
            await loadApplications(true);
            render();
            const next = state.apps.items[before];
            if (next && $("open-" + next.id)) {
              $("open-" + next.id).focus();
            }
          },
        })
      );
    }
    return parts;
  }

  async function loadApplications(more) {
    const apps = state.apps;
    const first = more ? PAGE_SIZE : Math.min(100, Math.max(PAGE_SIZE, apps ? apps.items.length : 0));
    const after = more ? apps.endCursor : null;
    const data = await gql(
      "query($first: Int!, $after: String) { myApplications(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { " +
        APPLICATION_FIELDS +
        " } } } applicationOverview { legacy { count references guidance } } }",
      { first, after }
    );
    const page = data.myApplications;
    const nodes = page.edges.map((edge) => edge.node);
    state.apps = {
      items: more ? apps.items.concat(nodes) : nodes,
      total: page.totalCount,
      hasNext: page.pageInfo.hasNextPage,
      endCursor: page.pageInfo.endCursor,
      legacy: data.applicationOverview.legacy,
    };
  }

  function viewNewApplication() {
    const idporten = state.viewer && state.viewer.loginMethod === "IDPORTEN";
    const relations = ["SELF", "FAMILY_MEMBER", "EMPLOYEE", "OTHER"];
    const form = h(
      "form",
      {
        id: "new-application-form",
        novalidate: true,
        onsubmit: onSubmit(
          async () => {
            const checked = document.querySelector("input[name=relation]:checked");
            if (!checked) {
              throw new Failure("INVALID_INPUT", t("new.relation") + " " + t("required"), { field: "relation" });
            }
            const data = await gql(
              "mutation($input: CreateApplicationInput!) { createApplication(input: $input) { " + APPLICATION_FIELDS + " } }",
              {
                input: {
                  kind: $("kind").value,
                  relation: checked.value,
                  applicant: {
                    name: $("applicant-name").value.trim(),
                    birthDate: dateValue("birth-date"),
                    nationality: $("nationality").value.trim().toUpperCase(),
                  },
                },
              }
            );
            state.current = data.createApplication;
            state.apps = null;
            state.notice = { key: "app.created.notice" };
            go("#/applications/" + data.createApplication.id);
          },
          (failure) => {
            const byField = {
              "applicant.name": "applicant-name",
              "applicant.birthDate": "birth-date",
              "applicant.nationality": "nationality",
              relation: "relation",
            };
            if (failure.code === "LOGIN_METHOD_NOT_ALLOWED") {
              return "relation";
            }
            return byField[failure.extensions.field] || null;
          }
        ),
      },
      errorSummary(),
      field({ id: "kind", label: t("new.kind"), control: select("kind", ["WORK", "FAMILY", "STUDY", "VISIT", "PROTECTION", "CITIZENSHIP"], "kind.") }),
      h(
        "fieldset",
        { id: "relation", class: "field", "aria-describedby": "relation-error" + (idporten ? " relation-hint" : "") },
        h("legend", { text: t("new.relation") }),
        idporten ? h("p", { class: "hint", id: "relation-hint", text: t("new.employerNote") }) : null,
        h("div", { class: "field-error", id: "relation-error" }),
        relations.map((relation) =>
          h(
            "div",
            { class: "radio" },
            h("input", { type: "radio", name: "relation", id: "relation-" + relation, value: relation, checked: relation === "SELF" }),
            h("label", { for: "relation-" + relation, text: t("relation." + relation) })
          )
        )
      ),
      h(
        "fieldset",
        { class: "group" },
        h("legend", { text: t("new.applicant") }),
        field({ id: "applicant-name", label: t("new.name"), autocomplete: "off", maxlength: 200 }),
        dateFields("birth-date", t("new.birthDate")),
        field({
          id: "nationality",
          label: t("new.nationality"),
          hint: t("new.nationalityHint"),
          maxlength: 3,
          autocapitalize: "characters",
          spellcheck: "false",
          inputClass: "width-4",
        })
      ),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("new.create") }))
    );
    return [heading(t("new.title")), noticeBox(), form];
  }

  function viewApplication(id) {
    const app = state.current && state.current.id === id ? state.current : null;
    if (!app) {
      return [heading(t("apps.title")), h("p", { text: t("loading") })];
    }
    const parts = [
      h("p", {}, h("a", { href: "#/applications", id: "back-to-list", text: t("app.back") })),
      heading(t("app.title", { name: app.applicantName })),
      noticeBox(),
      h("section", { id: "application-facts", "data-status": app.status }, applicationFacts(app)),
    ];
    parts.push(...applicationActions(app));
    return parts;
  }

  function applicationFacts(app) {
    return definitionList([
      [t("app.kind"), t("kind." + app.kind), "kind"],
      [t("app.relation"), t("relation." + app.relation), "relation"],
      [t("app.status"), statusBadge(app.status), "status"],
      [t("app.nextStep"), app.nextStep, "next-step"],
      [t("app.created"), formatInstant(app.createdAt), "created"],
      app.submittedAt ? [t("app.submitted"), formatInstant(app.submittedAt), "submitted"] : null,
      [t("app.appointment"), appointmentText(app.appointment), "appointment"],
      [t("app.fee"), app.feePaid ? t("app.feePaid") + (app.refundRequested ? " – " + t("app.refundRequested") : "") : t("app.feeNotPaid"), "fee"],
      app.decision
        ? [
            t("app.decision"),
            t("outcome." + app.decision.outcome) + ", " + t("channel." + app.decision.channel) + " (" + formatInstant(app.decision.decidedAt) + ")",
            "decision",
          ]
        : null,
    ]);
  }

  // A one-button form for a mutation on the application.
  function actionForm(id, label, mutation, notice) {
    return h(
      "form",
      {
        id,
        class: "action",
        novalidate: true,
        onsubmit: onSubmit(async () => {
          const app = state.current;
          const data = await gql(mutation, { id: app.id });
          state.current = Object.values(data)[0];
          state.pageNotice = { key: notice };
          render({ focusHeading: true, announceNotice: true });
        }),
      },
      errorSummary(),
      h("button", { type: "submit", class: "secondary", text: label })
    );
  }

  function applicationActions(app) {
    const parts = [];
    if (app.status === "DRAFT") {
      parts.push(
        actionForm("submit-form", t("app.submit"), "mutation($id: ID!) { submitApplication(id: $id) { " + APPLICATION_FIELDS + " } }", "app.submitted.notice")
      );
    }
    const photo = app.status === "DECIDED" && app.decision && app.decision.outcome === "GRANTED";
    if (!app.appointment && (app.status === "SUBMITTED" || photo)) {
      parts.push(bookingForm(app, photo ? "RESIDENCE_CARD_PHOTO" : "APPLICATION"));
    }
    if (app.appointment) {
      parts.push(
        actionForm("cancel-form", t("app.cancel"), "mutation($id: ID!) { cancelAppointment(applicationId: $id) { " + APPLICATION_FIELDS + " } }", "app.cancelled")
      );
    }
    if (app.feePaid && !app.refundRequested) {
      parts.push(
        actionForm("refund-form", t("app.refund"), "mutation($id: ID!) { requestRefund(applicationId: $id) { " + APPLICATION_FIELDS + " } }", "app.refunded")
      );
    }
    return parts;
  }

  function bookingForm(app, purpose) {
    const times = [];
    for (let hour = 8; hour < 16; hour += 1) {
      for (const minute of ["00", "30"]) {
        times.push(String(hour).padStart(2, "0") + ":" + minute);
      }
    }
    const form = h(
      "form",
      {
        id: "book-form",
        novalidate: true,
        onsubmit: onSubmit(
          async () => {
            const [hour, minute] = $("book-time").value.split(":").map(Number);
            const year = Number($("book-date-year").value);
            const month = Number($("book-date-month").value);
            const day = Number($("book-date-day").value);
            const startsAt = new Date(year, month - 1, day, hour, minute);
            if (
              !year ||
              startsAt.getFullYear() !== year ||
              startsAt.getMonth() !== month - 1 ||
              startsAt.getDate() !== day ||
              startsAt.getTime() <= Date.now()
            ) {
              throw new Failure("INVALID_INPUT", t("book.badDate"), { field: "startsAt" });
            }
            await gql(
              "mutation($id: ID!, $input: BookAppointmentInput!) { bookAppointment(applicationId: $id, input: $input) { startsAt } }",
              {
                id: app.id,
                input: {
                  meetingPoint: $("meeting-point").value,
                  location: $("location").value.trim(),
                  startsAt: startsAt.toISOString().replace(/\.\d{3}Z$/, "Z"),
                  purpose: $("purpose").value,
                },
              }
            );
            const data = await gql("query($id: ID!) { application(id: $id) { " + APPLICATION_FIELDS + " } }", { id: app.id });
            state.current = data.application;
            state.pageNotice = { key: "book.booked" };
            render({ focusHeading: true, announceNotice: true });
          },
          (failure) => {
            const byField = { startsAt: "book-date", location: "location", meetingPoint: "meeting-point", purpose: "purpose" };
            return byField[failure.extensions.field] || null;
          }
        ),
      },
      h("h2", { id: "book-heading", text: t("book.title") }),
      errorSummary(),
      field({ id: "meeting-point", label: t("book.meetingPoint"), control: select("meeting-point", ["POLICE", "SUA", "EMBASSY", "VISA_CENTRE"], "meeting.") }),
      field({ id: "location", label: t("book.location"), hint: t("book.locationHint"), maxlength: 200 }),
      dateFields("book-date", t("book.date")),
      field({ id: "book-time", label: t("book.time"), control: select("book-time", times, "", "09:00") }),
      field({
        id: "purpose",
        label: t("book.purpose"),
        control: select("purpose", ["APPLICATION", "RESIDENCE_CARD_PHOTO"], "purpose.", purpose),
      }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", text: t("book.submit") }))
    );
    form.setAttribute("aria-labelledby", "book-heading");
    return form;
  }

  function viewNotFound() {
    return [heading(t("notFound.title")), h("p", { text: t("notFound.text") })];
  }

  // ---- live updates ----------------------------------------------------------

  // A `next` of the subscription: fetch the whole application (its next
  // step is worded by the server) and update what is shown.
  async function applicationChanged(id) {
    let data;
    try {
      data = await gql("query($id: ID!) { application(id: $id) { " + APPLICATION_FIELDS + " } }", { id });
    } catch (_) {
      return;
    }
    const app = data.application;
    if (!app) {
      return;
    }
    let changed = false;
    if (state.current && state.current.id === id) {
      changed = state.current.status !== app.status || JSON.stringify(state.current) !== JSON.stringify(app);
      state.current = app;
    }
    if (state.apps) {
      const index = state.apps.items.findIndex((item) => item.id === id);
      if (index >= 0) {
        changed = changed || JSON.stringify(state.apps.items[index]) !== JSON.stringify(app);
        state.apps.items[index] = app;
      } else {
        await refreshShown();
        return;
      }
    }
    if (changed) {
      render();
      announce(t("apps.updated", { name: app.applicantName, status: t("status." + app.status) }));
    }
  }

  // Fetch again what is on the screen (polling, and after a reconnect).
  async function refreshShown() {
    const route = parseRoute();
    try {
      if (route.name === "applications" && state.apps) {
        const before = JSON.stringify(state.apps);
        await loadApplications(false);
        if (JSON.stringify(state.apps) !== before) {
          render();
        }
      } else if (route.name === "application" && state.current) {
        const data = await gql("query($id: ID!) { application(id: $id) { " + APPLICATION_FIELDS + " } }", { id: route.id });
        if (data.application && JSON.stringify(data.application) !== JSON.stringify(state.current)) {
          const before = state.current.status;
          state.current = data.application;
          render();
          if (before !== data.application.status) {
            announce(t("apps.updated", { name: data.application.applicantName, status: t("status." + data.application.status) }));
          }
        }
      }
    } catch (_) {
      // The next poll tries again.
    }
  }

  // ---- the router --------------------------------------------------------------

  function parseRoute() {
    const hash = location.hash || "#/";
    const path = hash.slice(1);
    if (path === "/login") return { name: "login" };
    if (path === "/register") return { name: "register" };
    if (path === "/forgot") return { name: "forgot" };
    if (path === "/applications") return { name: "applications" };
    if (path === "/applications/new") return { name: "new" };
    const match = /^\/applications\/([A-Za-z0-9-]{1,64})$/.exec(path);
    if (match) return { name: "application", id: match[1] };
    if (path === "/" || path === "") return { name: "home" };
    return { name: "notfound" };
  }

  const PROTECTED = ["applications", "new", "application"];

  function go(hash) {
    if (location.hash === hash) {
      route();
    } else {
      location.hash = hash;
    }
  }

  async function route() {
    if (location.hash && !location.hash.startsWith("#/")) {
      return; // an in-page link (the skip link, an error's field)
    }
    const current = parseRoute();
    if (state.viewer === undefined) {
      await loadViewer();
    }
    if (current.name === "home") {
      go(state.viewer ? "#/applications" : "#/login");
      return;
    }
    if (PROTECTED.includes(current.name) && !state.viewer) {
      go("#/login");
      return;
    }
    if ((current.name === "login" || current.name === "register") && state.viewer) {
      go("#/applications");
      return;
    }
    stopTimers();
    state.routeKey = location.hash;
    // A notice set before the move is shown on the new page only.
    state.pageNotice = state.notice;
    state.notice = null;
    render({ focusHeading: true, fresh: true });
    try {
      if (current.name === "applications") {
        await loadApplications(false);
      } else if (current.name === "application") {
        // Shown at once when known, and fetched again: it may have changed.
        const data = await gql("query($id: ID!) { application(id: $id) { " + APPLICATION_FIELDS + " } }", { id: current.id });
        if (!data.application) {
          state.current = null;
          renderInto(viewNotFound(), { focusHeading: true });
          return;
        }
        state.current = data.application;
      } else if (current.name === "register" || current.name === "forgot") {
        await loadPolicy();
      }
    } catch (failure) {
      if (failure instanceof Failure) {
        announce(failure.message, true);
      }
      return;
    }
    if (state.routeKey === location.hash) {
      render({ focusHeading: true, announceNotice: true });
    }
  }

  function currentView() {
    const current = parseRoute();
    switch (current.name) {
      case "login":
        return viewLogin();
      case "register":
        return flowView("register");
      case "forgot":
        return flowView("forgot");
      case "applications":
        return viewApplications();
      case "new":
        return viewNewApplication();
      case "application":
        return viewApplication(current.id);
      default:
        return viewNotFound();
    }
  }

  // Draw the current view. What was typed, and the focus, survive a
  // redraw (a language switch, a live update); a new route starts empty.
  function render(options) {
    renderInto(currentView(), options || {});
  }

  function renderInto(parts, options) {
    const main = $("main");
    const kept = {};
    const focused = document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : null;
    if (!options.fresh) {
      for (const control of main.querySelectorAll("input, select, textarea")) {
        if (control.id) {
          kept[control.id] = control.type === "radio" || control.type === "checkbox" ? control.checked : control.value;
        }
      }
    }
    main.replaceChildren(...[].concat(parts).flat(2).filter(Boolean));
    for (const [id, value] of Object.entries(kept)) {
      const control = $(id);
      if (!control) continue;
      if (control.type === "radio" || control.type === "checkbox") {
        control.checked = value;
      } else {
        control.value = value;
      }
      control.dispatchEvent(new Event("input"));
    }
    renderChrome();
    const title = main.querySelector("h1");
    document.title = (title ? title.textContent + " – " : "") + t("brand");
    if (options.focusHeading && title) {
      title.focus();
    } else if (focused && $(focused)) {
      $(focused).focus();
    }
    if (options.announceNotice && state.pageNotice) {
      announce(t(state.pageNotice.key, state.pageNotice.params));
    }
  }

  function renderChrome() {
    document.documentElement.lang = state.lang;
    $("skip-link").textContent = t("skip");
    $("brand").textContent = t("brand");
    $("footer-text").textContent = t("footer");
    const switcher = $("lang-switch");
    switcher.textContent = t("lang.switch");
    switcher.setAttribute("lang", state.lang === "en" ? "nb" : "en");
    switcher.setAttribute("aria-label", t("lang.switchLabel"));
    const nav = $("nav");
    nav.setAttribute("aria-label", t("nav.label"));
    const route = parseRoute().name;
    // Redrawn only when it changes, so that a link keeps its focus.
    const key = [state.lang, route, state.viewer ? state.viewer.name : ""].join("|");
    if (nav.dataset.key === key) {
      return;
    }
    nav.dataset.key = key;
    const link = (href, key, names, id) =>
      h("li", {}, h("a", { href, id, text: t(key), "aria-current": names.includes(route) ? "page" : null }));
    const items = state.viewer
      ? [
          link("#/applications", "nav.applications", ["applications", "application"], "nav-applications"),
          link("#/applications/new", "nav.new", ["new"], "nav-new"),
          h("li", { class: "who", text: t("loggedInAs", { name: state.viewer.name }) }),
          h("li", {}, h("button", { type: "button", id: "logout", class: "link-button", text: t("nav.logout"), onclick: logout })),
        ]
      : [link("#/login", "nav.login", ["login"], "nav-login"), link("#/register", "nav.register", ["register"], "nav-register")];
    nav.replaceChildren(h("ul", {}, items));
  }

  async function logout() {
    if (state.viewer && state.viewer.loginMethod === "IDPORTEN") {
      setViewer(null);
      location.href = "/auth/idporten/logout";
      return;
    }
    try {
      await gql("mutation { logout }");
    } catch (_) {
      // Logged out already.
    }
    setViewer(null);
    state.notice = { key: "login.loggedOut" };
    go("#/login");
  }

  async function switchLanguage() {
    state.lang = state.lang === "en" ? "nb" : "en";
    try {
      localStorage.setItem(LANG_KEY, state.lang);
    } catch (_) {
      // Not remembered; still switched.
    }
    render();
    $("lang-switch").focus();
    announce(t("lang.name"));
    // Texts the server words (next steps, guidance, the password rules).
    const route = parseRoute();
    try {
      if (route.name === "register" || route.name === "forgot") {
        await loadPolicy();
      } else if (route.name === "applications" && state.apps) {
        await loadApplications(false);
      } else if (route.name === "application" && state.current) {
        const data = await gql("query($id: ID!) { application(id: $id) { " + APPLICATION_FIELDS + " } }", { id: route.id });
        state.current = data.application || state.current;
      } else {
        return;
      }
      render();
    } catch (_) {
      // Kept in the other language until the next load.
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("lang-switch").addEventListener("click", switchLanguage);
    $("skip-link").addEventListener("click", (event) => {
      event.preventDefault();
      $("main").focus();
    });
    window.addEventListener("hashchange", route);
    renderChrome();
    route();
  });
})();
