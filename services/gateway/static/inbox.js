// The inbox, live: new notifications appear at the top of the list as they
// arrive, and the unread count follows. Only an enhancement: without it the
// page shows the same after a reload. Text goes in as text, never as HTML.
(function () {
  "use strict";
  var list = document.getElementById("inbox");
  var unread = document.getElementById("unread-line");
  if (!list || !unread || !window.EventSource) {
    return;
  }
  var count = parseInt(unread.getAttribute("data-unread") || "0", 10);
  var source = new EventSource("/my/notifications/live");
  source.addEventListener("notification", function (event) {
    var n;
    try {
      n = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (document.getElementById("n-" + n.id)) {
      return;
    }
    var empty = list.querySelector("li.empty");
    if (empty) {
      empty.remove();
    }
    var item = document.createElement("li");
    item.id = "n-" + n.id;
    item.className = "unread";
    var title = document.createElement("h2");
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "New";
    title.appendChild(badge);
    title.appendChild(document.createTextNode(" " + n.title));
    var body = document.createElement("p");
    body.textContent = n.body;
    var meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = n.when;
    if (n.group_id) {
      meta.appendChild(document.createTextNode(" · "));
      var link = document.createElement("a");
      link.href = "/groups/" + encodeURIComponent(n.group_id);
      link.textContent = "The group's page";
      meta.appendChild(link);
    }
    if (n.reportable) {
      meta.appendChild(document.createTextNode(" · "));
      var report = document.createElement("a");
      report.href = "/my/notifications/" + encodeURIComponent(n.id) + "/report";
      report.textContent = "Report this message";
      meta.appendChild(report);
    }
    item.appendChild(title);
    item.appendChild(body);
    item.appendChild(meta);
    list.insertBefore(item, list.firstChild);
    count += 1;
    unread.textContent = count + " unread";
  });
})();
