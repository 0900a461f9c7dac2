// heapscope web UI: the dominator-tree explorer. Everything else works
// without script. Names from the dump are set with textContent, never as
// HTML, and links are built only from the server's own paths.
"use strict";

(function () {
  const root = document.getElementById("domtree");
  if (!root) return;
  const dump = root.dataset.dump;

  function text(tag, cls, value) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function safeHref(href) {
    // Only same-origin object pages: anything else is dropped.
    return typeof href === "string" && /^\/dump\/\d+\/object\/0x[0-9a-f]+$/.test(href) ? href : null;
  }

  function nodeItem(child) {
    const li = document.createElement("li");
    li.className = "node";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "toggle";
    toggle.textContent = "+";
    toggle.disabled = !(child.children > 0);
    toggle.setAttribute("aria-label", "expand");
    li.appendChild(toggle);
    li.appendChild(text("span", "size", child.retained_text || ""));
    const href = safeHref(child.href);
    const label = text(href ? "a" : "span", "obj", (child.class || child.type || "?") + (child.name ? " " + child.name : ""));
    if (href) label.href = href;
    li.appendChild(label);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(text("span", "addr", child.address || ""));
    if (child.location) {
      li.appendChild(document.createTextNode(" "));
      li.appendChild(text("span", "loc", child.location));
    }
    let loaded = false;
    let open = false;
    let sub = null;
    toggle.addEventListener("click", function () {
      if (!loaded) {
        loaded = true;
        toggle.textContent = "…";
        sub = document.createElement("ul");
        li.appendChild(sub);
        expand(child.address, sub).then(function () {
          open = true;
          toggle.textContent = "−";
        });
        return;
      }
      open = !open;
      sub.hidden = !open;
      toggle.textContent = open ? "−" : "+";
    });
    return li;
  }

  function expand(node, into) {
    into.appendChild(text("li", "muted loading", "loading (the first time, the dump file is read)…"));
    return fetch("/dump/" + encodeURIComponent(dump) + "/dominators?node=" + encodeURIComponent(node), { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        into.textContent = "";
        if (!res.ok) {
          into.appendChild(text("li", "warning", res.body.error || "cannot expand"));
          return;
        }
        res.body.children.forEach(function (c) { into.appendChild(nodeItem(c)); });
        const more = res.body.total_children - res.body.children.length;
        if (more > 0) {
          into.appendChild(text("li", "muted", "… and " + more + " smaller objects"));
        }
      })
      .catch(function (e) {
        into.textContent = "";
        into.appendChild(text("li", "warning", "cannot expand: " + e));
      });
  }

  const top = document.createElement("ul");
  root.appendChild(top);
  expand("root", top);
})();
