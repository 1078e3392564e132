<?php
/*
 * Runs PostfixAdmin 3.3's own PHP code from the command line, against the
 * database and $CONF settings given as JSON in $PFA_CONF (no web server):
 *
 *   php harness.php upgrade                 its public/upgrade.php
 *   php harness.php batch < lines           one answer line per request line:
 *       login\tUSER\tPASSWORD               its Login('mailbox')->login(): ok|refused
 *       quota\tUSER                         the quota its pages show (MB)
 *   php harness.php viewlog DOMAIN          the rows its View Log page lists
 *   php harness.php cli ARGS...             its scripts/postfixadmin-cli.php
 *
 * The settings are applied after PostfixAdmin's config.inc.php is read, as a
 * config.local.php would apply them, so the system's configuration is never
 * touched.
 */
define('POSTFIXADMIN_CLI', 1);
$pfa = getenv('PFA_DIR') ?: '/usr/share/postfixadmin';
require_once "$pfa/common.php";

foreach (json_decode(getenv('PFA_CONF'), true) as $key => $value) {
    $CONF[$key] = $value;
}
Config::getInstance()->setAll($CONF);
Config::write('__LANG', $PALANG);

$command = $argv[1] ?? '';
if ($command === 'upgrade') {
    require "$pfa/public/upgrade.php";
} elseif ($command === 'batch') {
    $login = new Login('mailbox');
    while (($line = fgets(STDIN)) !== false) {
        $request = explode("\t", rtrim($line, "\n"), 3);
        if ($request[0] === 'login') {
            echo $login->login($request[1], $request[2]) ? "ok\n" : "refused\n";
        } else {
            $row = db_query_one('SELECT quota FROM ' . table_by_key('mailbox') . ' WHERE username = ?', [$request[1]]);
            echo divide_quota($row['quota']), "\n";
        }
    }
} elseif ($command === 'viewlog') {
    // viewlog.php's query and its translation of the action names.
    $rows = db_query_all(
        'SELECT timestamp, username, domain, action, data FROM ' . table_by_key('log')
        . ' WHERE domain = :domain ORDER BY timestamp DESC', ['domain' => $argv[2]]
    );
    foreach ($rows as $row) {
        echo $row['username'], "\t", $PALANG['pViewlog_action_' . $row['action']], "\t", $row['data'], "\n";
    }
} elseif ($command === 'cli') {
    $argv = array_merge(['postfixadmin-cli.php'], array_slice($argv, 2));
    $argc = count($argv);
    // Its own define('POSTFIXADMIN_CLI') repeats ours: not worth a warning.
    error_reporting(E_ALL & ~E_WARNING);
    require "$pfa/scripts/postfixadmin-cli.php";
} else {
    fwrite(STDERR, "usage: harness.php upgrade|batch|viewlog DOMAIN|cli ARGS...\n");
    exit(64);
}
