(function executeRule(current, previous /*null when async*/) {
    // Only the sys_id goes out: the function reads the incident back from
    // ServiceNow itself and trusts nothing else in the body.
    // The URL and the token live in the REST message "iLert back-sync" and its
    // Basic auth profile (stored encrypted), never in this script.
    var incident = String(current.getValue('number') || current.getUniqueValue());
    var later = 'the scheduled pass will sync it within a minute';
    try {
        var request = new sn_ws.RESTMessageV2('iLert back-sync', 'push');
        request.setRequestBody(JSON.stringify({ sys_id: String(current.getUniqueValue()) }));
        // Short: a push only saves time, and a slow one holds a worker.
        request.setHttpTimeout(5000);
        var response = request.execute();
        var status = response.getStatusCode();
        // No retries here (RESTMessageV2 has none); the scheduled pass is the retry.
        // Neither the response body nor its headers are logged.
        if (!(status >= 200 && status < 300)) {
            gs.warn('iLert back-sync: push for ' + incident + ' got HTTP ' + status + '; ' + later + '.');
        }
    } catch (e) {
        // The exception text may name the endpoint, so it is not logged.
        gs.warn('iLert back-sync: push for ' + incident + ' could not be sent; ' + later + '.');
    }
})(current, previous);
