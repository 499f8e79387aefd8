// GraphiQL for this server: queries and mutations over POST /graphql, subscriptions over the
// websocket at /graphql/ws (graphql-ws). The access token goes in the Headers tab as
// {"Authorization": "Bearer <token>"}; subscriptions send the same header in their
// connection_init payload, read when the socket (re)connects.
(function () {
  var http = new URL('/graphql', window.location.href).href;
  var ws = http.replace(/^http/, 'ws') + '/ws';
  // GraphiQL 3 keeps each tab's headers in its stored tab state (an older single
  // `graphiql:headers` entry is read once and moved there).
  var TABS_KEY = 'graphiql:tabState';
  var HEADERS_KEY = 'graphiql:headers';
  var HINT = '{\n  "Authorization": "Bearer <paste a token: scripts/up prints one, or run concert-reservation token --user 1>"\n}';

  function savedHeaders() {
    try {
      var tabs = JSON.parse(window.localStorage.getItem(TABS_KEY) || 'null');
      var text = tabs && tabs.tabs && tabs.tabs[tabs.activeTabIndex]
        ? tabs.tabs[tabs.activeTabIndex].headers
        : window.localStorage.getItem(HEADERS_KEY);
      return JSON.parse(text || '{}') || {};
    } catch (e) {
      return {};
    }
  }

  var wsClient = graphqlWs.createClient({
    url: ws,
    lazy: true,
    connectionParams: function () {
      var headers = savedHeaders();
      var authorization = headers.Authorization || headers.authorization;
      // The hint is not a token: connect without one rather than be refused.
      return authorization && authorization.indexOf('<') < 0 ? { Authorization: authorization } : {};
    },
  });
  var fetcher = GraphiQL.createFetcher({ url: http, wsClient: wsClient });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultHeaders: HINT,
    shouldPersistHeaders: true,
    defaultEditorToolsVisibility: 'headers',
  }));
})();
