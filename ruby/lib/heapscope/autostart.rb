# frozen_string_literal: true

# Loaded by `heapscope run` through RUBYOPT (`-rheapscope/autostart`): starts
# the agent from the HEAPSCOPE_* environment. It never raises into the app:
# any problem is one line on stderr starting with `heapscope:` and the app
# runs without the agent.
begin
  require "heapscope"
rescue StandardError, ScriptError => e
  warn "heapscope: could not load the agent (#{e.class}: #{e.message.to_s.gsub(/\s*\n\s*/, ' ')}); " \
       "the agent is off"
else
  Heapscope.autostart
end
