/* Sightline's first-party analytics.js: served by Sightline from the site's own (sub)domain
 * at /analytics.js/v1/<write key>/analytics.min.js, where the standard analytics.js snippet
 * loads it once its CDN host is this one. It takes over the snippet's queue and speaks the
 * Segment tracking API (page, track, identify, group, alias) to the server it came from:
 * no third-party request, no cookie of anyone else. Apache-2.0, part of Sightline. */
(function () {
  'use strict';
  var w = window, d = document;
  var stub = w.analytics;
  if (stub && stub.sightline) return;
  var queued = Array.isArray(stub) ? stub.slice() : [];
  var script = d.currentScript || d.querySelector('script[src*="/analytics.js/v1/"]');
  var found = /^(https?:\/\/[^\/]+)\/analytics\.js\/v1\/([^\/]+)\//.exec(script ? script.src : '');
  var host = found ? found[1] : '';
  var writeKey = (stub && stub._writeKey) || (found ? decodeURIComponent(found[2]) : '');
  var VERSION = '1.0.0';
  var YEAR = 365 * 24 * 3600;
  var ready = [];
  var loaded = false;

  function uuid() {
    if (w.crypto && w.crypto.randomUUID) return w.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    w.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 15) | 64;
    bytes[8] = (bytes[8] & 63) | 128;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' + hex.slice(16, 20) + '-' + hex.slice(20);
  }

  // Identity is kept where analytics.js keeps it (first-party cookie and localStorage), so a
  // site moving from Segment's CDN keeps its visitors' anonymous ids.
  function cookie(name, value) {
    if (value === undefined) {
      var match = d.cookie.match(new RegExp('(?:^|; )' + name + '=([^;]*)'));
      return match ? decodeURIComponent(match[1]) : null;
    }
    var secure = location.protocol === 'https:' ? '; Secure' : '';
    d.cookie = name + '=' + (value === null ? '' : encodeURIComponent(value)) + '; Path=/; SameSite=Lax'
      + (value === null ? '; Max-Age=0' : '; Max-Age=' + YEAR) + secure;
  }
  function stored(name) {
    var value = null;
    try { value = w.localStorage.getItem(name); } catch (e) { /* storage off */ }
    if (value === null) value = cookie(name);
    try { return value === null ? null : JSON.parse(value); } catch (e) { return value; }
  }
  function store(name, value) {
    var text = value === null ? null : JSON.stringify(value);
    try {
      if (text === null) w.localStorage.removeItem(name); else w.localStorage.setItem(name, text);
    } catch (e) { /* storage off */ }
    if (name !== 'ajs_user_traits' && name !== 'ajs_group_properties') cookie(name, text);
  }
  function anonymousId() {
    var id = stored('ajs_anonymous_id');
    if (!id) { id = uuid(); store('ajs_anonymous_id', id); }
    return id;
  }

  function isObject(x) { return x !== null && typeof x === 'object' && !Array.isArray(x); }
  function assign(target) {
    for (var i = 1; i < arguments.length; i++) {
      var source = arguments[i];
      if (isObject(source)) for (var k in source) if (Object.prototype.hasOwnProperty.call(source, k)) target[k] = source[k];
    }
    return target;
  }

  // The page as the call saw it: the snippet appends it (`__t: 'bpc'`) to queued calls.
  function pageContext(saved) {
    var canonical = d.querySelector("link[rel='canonical']");
    var page = saved || {
      c: canonical ? canonical.getAttribute('href') : undefined,
      p: location.pathname, u: location.href, s: location.search, t: d.title, r: d.referrer
    };
    var url = page.c && page.c.indexOf('http') === 0 ? page.c + (page.c.indexOf('?') < 0 ? page.s : '') : page.u;
    return { path: page.c ? new URL(page.c, location.href).pathname : page.p, referrer: page.r, search: page.s, title: page.t, url: url };
  }
  function campaign(search) {
    var out = {};
    (search || '').replace(/^\?/, '').split('&').forEach(function (pair) {
      var parts = pair.split('=');
      var key = decodeURIComponent(parts[0] || '');
      if (key.indexOf('utm_') !== 0 || parts.length < 2) return;
      var name = key.slice(4) === 'campaign' ? 'name' : key.slice(4);
      out[name] = decodeURIComponent(parts.slice(1).join('=').replace(/\+/g, ' '));
    });
    return Object.keys(out).length ? out : undefined;
  }

  function send(type, fields, options, saved, callback) {
    options = isObject(options) ? options : {};
    var page = pageContext(saved);
    var context = assign({
      library: { name: 'sightline-analytics.js', version: VERSION },
      page: page,
      userAgent: navigator.userAgent,
      locale: navigator.language,
      timezone: (w.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone) || undefined,
      campaign: campaign(page.search)
    }, options.context);
    var userId = stored('ajs_user_id');
    var event = assign({
      type: type,
      messageId: 'ajs-' + uuid(),
      anonymousId: options.anonymousId || anonymousId(),
      timestamp: (options.timestamp ? new Date(options.timestamp) : new Date()).toISOString(),
      context: context,
      integrations: options.integrations || {}
    }, fields);
    if (userId !== null && event.userId === undefined) event.userId = userId;
    deliver(type.charAt(0), event, 0, callback);
    return event;
  }

  // Sent as text/plain with the key in the body: a simple request, no CORS preflight.
  function deliver(letter, event, attempt, callback) {
    event.sentAt = new Date().toISOString();
    event.writeKey = writeKey;
    var body = JSON.stringify(event);
    var done = function () { if (typeof callback === 'function') callback(); };
    fetch(host + '/v1/' + letter, {
      method: 'POST', body: body, keepalive: body.length < 60000, credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' }
    }).then(function (answer) {
      if ((answer.status === 429 || answer.status >= 500) && attempt < 4) retry(letter, event, attempt, callback);
      else done();
    }, function () {
      if (attempt < 4) retry(letter, event, attempt, callback); else done();
    });
  }
  function retry(letter, event, attempt, callback) {
    setTimeout(function () { deliver(letter, event, attempt + 1, callback); }, 500 * Math.pow(2, attempt));
  }

  // Segment's argument shapes: trailing options and callback are optional, and a function
  // may come earlier.
  function split(args, names) {
    args = Array.prototype.slice.call(args);
    var saved;
    if (args.length && isObject(args[args.length - 1]) && args[args.length - 1].__t === 'bpc') saved = args.pop();
    var callback;
    for (var i = 0; i < args.length; i++) if (typeof args[i] === 'function') { callback = args[i]; args = args.slice(0, i); break; }
    var out = { saved: saved, callback: callback };
    names.forEach(function (name, i) { out[name] = args[i]; });
    return out;
  }

  var analytics = {
    sightline: true,
    VERSION: VERSION,
    _writeKey: writeKey,
    initialized: true,
    invoked: true,
    load: function () { return analytics; },
    page: function () {
      var a = split(arguments, ['category', 'name', 'properties', 'options']);
      if (isObject(a.category)) { a.options = a.name; a.properties = a.category; a.category = a.name = undefined; }
      else if (isObject(a.name)) { a.options = a.properties; a.properties = a.name; a.name = a.category; a.category = undefined; }
      var page = pageContext(a.saved);
      var properties = assign({ path: page.path, referrer: page.referrer, search: page.search, title: page.title, url: page.url }, a.properties);
      if (a.name) properties.name = a.name;
      if (a.category) properties.category = a.category;
      send('page', { name: a.name, category: a.category, properties: properties }, a.options, a.saved, a.callback);
      return analytics;
    },
    track: function () {
      var a = split(arguments, ['event', 'properties', 'options']);
      send('track', { event: String(a.event), properties: a.properties || {} }, a.options, a.saved, a.callback);
      return analytics;
    },
    identify: function () {
      var a = split(arguments, ['userId', 'traits', 'options']);
      if (isObject(a.userId)) { a.options = a.traits; a.traits = a.userId; a.userId = undefined; }
      if (a.userId !== undefined && a.userId !== null) {
        var previous = stored('ajs_user_id');
        if (previous !== null && previous !== String(a.userId)) store('ajs_user_traits', {});
        store('ajs_user_id', String(a.userId));
      }
      var traits = assign({}, stored('ajs_user_traits'), a.traits);
      store('ajs_user_traits', traits);
      send('identify', { traits: traits }, a.options, a.saved, a.callback);
      return analytics;
    },
    group: function () {
      var a = split(arguments, ['groupId', 'traits', 'options']);
      send('group', { groupId: String(a.groupId), traits: a.traits || {} }, a.options, a.saved, a.callback);
      return analytics;
    },
    alias: function () {
      var a = split(arguments, ['userId', 'previousId', 'options']);
      var previousId = a.previousId || stored('ajs_user_id') || anonymousId();
      send('alias', { userId: String(a.userId), previousId: String(previousId) }, a.options, a.saved, a.callback);
      return analytics;
    },
    screen: function () { return analytics; },
    reset: function () {
      ['ajs_user_id', 'ajs_user_traits', 'ajs_anonymous_id', 'ajs_group_id', 'ajs_group_properties'].forEach(function (n) { store(n, null); });
      return analytics;
    },
    setAnonymousId: function (id) { store('ajs_anonymous_id', String(id)); return analytics; },
    user: function () {
      return {
        id: function () { return stored('ajs_user_id'); },
        anonymousId: function () { return anonymousId(); },
        traits: function () { return stored('ajs_user_traits') || {}; }
      };
    },
    ready: function (callback) {
      if (typeof callback === 'function') { if (loaded) callback(); else ready.push(callback); }
      return analytics;
    },
    debug: function () { return analytics; },
    on: function () { return analytics; },
    off: function () { return analytics; },
    once: function () { return analytics; }
  };
  ['trackSubmit', 'trackClick', 'trackLink', 'trackForm', 'pageview', 'addSourceMiddleware',
    'addIntegrationMiddleware', 'addDestinationMiddleware', 'register'].forEach(function (name) {
    analytics[name] = function () { return analytics; };
  });

  w.analytics = analytics;
  // The calls made before this script arrived, in their order.
  queued.forEach(function (call) {
    var method = call[0];
    if (typeof analytics[method] === 'function') analytics[method].apply(analytics, call.slice(1));
  });
  loaded = true;
  ready.splice(0).forEach(function (callback) { callback(); });
})();
