# frozen_string_literal: true

ReqMemFill.fill(10)
