# A parent that forks a child; the child holds 32 MiB of its own, the parent little.
# Usage: ruby with_child.rb [SECONDS=2]. Prints "ready CHILD_PID" once the child is set up.
seconds = (ARGV[0] || 2).to_f
$stdout.sync = true
reader, writer = IO.pipe
child = fork do
  reader.close
  held = Array.new(512) { |i| (i.to_s * 65536)[0, 65536] }
  writer.puts "filled"
  writer.close
  sleep seconds
  held.size
end
writer.close
reader.gets
puts "ready #{child}"
Process.wait(child)
