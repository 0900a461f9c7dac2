# frozen_string_literal: true

ReqMemFill.fill(5)
$stdout.flush
exit! 4
