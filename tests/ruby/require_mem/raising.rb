# frozen_string_literal: true

ReqMemFill.fill(5)
raise "raising.rb fails halfway"
