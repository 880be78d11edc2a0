/*
 * A third-party client of the contact center's Customer Chat API v2, written the way the
 * platform's public jQuery sample client is: $.ajax for every call, cookies sent along
 * (withCredentials), the site's own headers on every request (an API key for its gateway,
 * and the ContactCenterId it was configured with), RequestChat written with a trailing
 * slash as in the upstream's docs table, and messages polled without an index. Nothing in
 * it knows about chat-bff: only the base URL points there.
 */
(function (global, $) {
  "use strict";

  function GmsChatClient(options) {
    this.baseUrl = options.baseUrl;
    this.headers = {
      "X-Api-Key": options.apiKey,
      ContactCenterId: options.contactCenterId,
    };
  }

  GmsChatClient.prototype.call = function (type, path, body) {
    return $.ajax({
      url: this.baseUrl + path,
      type: type,
      headers: this.headers,
      xhrFields: { withCredentials: true },
      contentType: "application/json",
      data: body === undefined ? undefined : JSON.stringify(body),
      dataType: "json",
      timeout: 15000,
    });
  };

  GmsChatClient.prototype.requestChat = function (nickname, subject) {
    return this.call("POST", "/api/v2/chats/", {
      operationName: "RequestChat",
      nickname: nickname,
      subject: subject,
    });
  };

  GmsChatClient.prototype.getChat = function (id) {
    return this.call("GET", "/api/v2/chats/" + id);
  };

  // The paths the upstream's overview page gives for polling.
  GmsChatClient.prototype.pollChat = function (id) {
    return this.call("GET", "/api/v2/me/chat/" + id);
  };

  GmsChatClient.prototype.pollMessages = function (id) {
    return this.call("GET", "/api/v2/me/chat/" + id + "/messages");
  };

  GmsChatClient.prototype.getMessages = function (id) {
    return this.call("GET", "/api/v2/chats/" + id + "/messages");
  };

  GmsChatClient.prototype.sendMessage = function (id, text) {
    return this.call("POST", "/api/v2/chats/" + id, { operationName: "SendMessage", text: text });
  };

  GmsChatClient.prototype.complete = function (id) {
    return this.call("POST", "/api/v2/chats/" + id, { operationName: "Complete" });
  };

  global.GmsChatClient = GmsChatClient;
})(window, jQuery);
