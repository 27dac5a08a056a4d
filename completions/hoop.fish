# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hoop_global_optspecs
    string join \n agent= fingerprint= ca= h/help V/version
end

function __fish_hoop_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hoop_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hoop_using_subcommand
    set -l cmd (__fish_hoop_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hoop -n "__fish_hoop_needs_command" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_needs_command" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_needs_command" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_needs_command" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_needs_command" -s V -l version -d 'Print version'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "login" -d 'Sign in with the agent\'s identity provider (browser, device code or client credentials) and remember the agent'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "logout" -d 'Forget your tokens for the agent and revoke the refresh token'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "trust" -d 'Remember an agent and its pin for later commands'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "connections" -d 'List the connections you may open'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "connect" -d 'Open a local port that leads to a connection'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "ssh" -d 'Open a shell (or run a command) on an ssh connection with your own `ssh`, checking the agent\'s host key from hoop\'s known-hosts file'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "sessions" -d 'List recorded ssh sessions: your own, or everyone\'s for a member of the agent\'s auditor group'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "replay" -d 'Play a recorded ssh session back in the terminal'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "exec" -d 'Run SQL on a database connection through the agent and print the results (audited and guarded like any client)'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "whoami" -d 'Show who the agent says you are'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "completions" -d 'Write shell completions to standard output'
complete -c hoop -n "__fish_hoop_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c hoop -n "__fish_hoop_using_subcommand login" -l client-id -d 'Service account client id [env: HOOP_CLIENT_ID]' -r
complete -c hoop -n "__fish_hoop_using_subcommand login" -l client-secret -d 'Service account secret; prefer HOOP_CLIENT_SECRET, which stays out of `ps`' -r
complete -c hoop -n "__fish_hoop_using_subcommand login" -l redirect-port -d 'Fixed local port for the sign-in redirect (default: a free one)' -r
complete -c hoop -n "__fish_hoop_using_subcommand login" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand login" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand login" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand login" -l device -d 'Use the device code flow (for machines without a browser)'
complete -c hoop -n "__fish_hoop_using_subcommand login" -l client-credentials -d 'Sign in as a service account (client id and secret)'
complete -c hoop -n "__fish_hoop_using_subcommand login" -l no-browser -d 'Print the sign-in URL instead of opening a browser'
complete -c hoop -n "__fish_hoop_using_subcommand login" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand logout" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand logout" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand logout" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand logout" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand trust" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand trust" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand trust" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand trust" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand connections" -s o -l output -r -f -a "table\t''
json\t''"
complete -c hoop -n "__fish_hoop_using_subcommand connections" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand connections" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand connections" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand connections" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand connect" -s p -l port -d 'Local port (default by type: postgres 5433, mysql 3307, ssh 2222, http and kubernetes 8081, tcp 8999; 0 for a free one)' -r
complete -c hoop -n "__fish_hoop_using_subcommand connect" -l bind -d 'Local address to listen on' -r
complete -c hoop -n "__fish_hoop_using_subcommand connect" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand connect" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand connect" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand connect" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand ssh" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand ssh" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand ssh" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand ssh" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand sessions" -s o -l output -r -f -a "table\t''
json\t''"
complete -c hoop -n "__fish_hoop_using_subcommand sessions" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand sessions" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand sessions" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand sessions" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand replay" -l speed -d 'Playback speed: 2 plays twice as fast' -r
complete -c hoop -n "__fish_hoop_using_subcommand replay" -l idle-limit -d 'Longest pause kept, in seconds (before --speed applies)' -r
complete -c hoop -n "__fish_hoop_using_subcommand replay" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand replay" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand replay" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand replay" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand exec" -s i -l input -d 'The SQL to run (several statements may be separated by `;`)' -r
complete -c hoop -n "__fish_hoop_using_subcommand exec" -s f -l file -d 'Read the SQL from FILE' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand exec" -s d -l database -d 'Database, when the connection offers more than one' -r
complete -c hoop -n "__fish_hoop_using_subcommand exec" -s o -l output -d 'Output format: an aligned table, JSON lines, or CSV' -r -f -a "table\t''
json\t''
csv\t''"
complete -c hoop -n "__fish_hoop_using_subcommand exec" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand exec" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand exec" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand exec" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand whoami" -s o -l output -r -f -a "table\t''
json\t''"
complete -c hoop -n "__fish_hoop_using_subcommand whoami" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand whoami" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand whoami" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand whoami" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand completions" -l agent -d 'Agent address, HOST:PORT (UDP)' -r
complete -c hoop -n "__fish_hoop_using_subcommand completions" -l fingerprint -d 'SHA-256 fingerprint of the agent\'s CA, as `hoop-agent init` printed it' -r
complete -c hoop -n "__fish_hoop_using_subcommand completions" -l ca -d 'The agent\'s CA certificate (PEM), instead of a fingerprint' -r -F
complete -c hoop -n "__fish_hoop_using_subcommand completions" -s h -l help -d 'Print help'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "login" -d 'Sign in with the agent\'s identity provider (browser, device code or client credentials) and remember the agent'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "logout" -d 'Forget your tokens for the agent and revoke the refresh token'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "trust" -d 'Remember an agent and its pin for later commands'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "connections" -d 'List the connections you may open'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "connect" -d 'Open a local port that leads to a connection'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "ssh" -d 'Open a shell (or run a command) on an ssh connection with your own `ssh`, checking the agent\'s host key from hoop\'s known-hosts file'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "sessions" -d 'List recorded ssh sessions: your own, or everyone\'s for a member of the agent\'s auditor group'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "replay" -d 'Play a recorded ssh session back in the terminal'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "exec" -d 'Run SQL on a database connection through the agent and print the results (audited and guarded like any client)'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "whoami" -d 'Show who the agent says you are'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "completions" -d 'Write shell completions to standard output'
complete -c hoop -n "__fish_hoop_using_subcommand help; and not __fish_seen_subcommand_from login logout trust connections connect ssh sessions replay exec whoami completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
