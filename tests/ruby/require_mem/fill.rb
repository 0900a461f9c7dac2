# frozen_string_literal: true

# Touches MIB mebibytes of fresh memory and keeps it alive.
module ReqMemFill
  KEEP = []

  def self.fill(mib)
    mib.times { KEEP << ("x" * (1 << 20)) }
  end
end
