import Testing

/// A fast hand parser held to ArgumentParser's reading (`RunRequestTests`,
/// `ApplyArgumentsTests`): over lines both take, the fast one answers and
/// the two answers are equal; over lines both refuse, neither answers.
enum ParserAgreement {
    static func expectSameReading<V: Equatable>(_ lines: [[String]], fast: ([String]) -> V?, argumentParser: ([String]) -> V?,
                                                sourceLocation: SourceLocation = #_sourceLocation) {
        for argv in lines {
            let read = fast(argv)
            #expect(read != nil, "\(argv)", sourceLocation: sourceLocation)
            #expect(read == argumentParser(argv), "\(argv)", sourceLocation: sourceLocation)
        }
    }

    static func expectBothRefuse<V>(_ lines: [[String]], fast: ([String]) -> V?, argumentParser: ([String]) -> V?,
                                    sourceLocation: SourceLocation = #_sourceLocation) {
        for argv in lines {
            #expect(fast(argv) == nil, "\(argv)", sourceLocation: sourceLocation)
            #expect(argumentParser(argv) == nil, "\(argv)", sourceLocation: sourceLocation)
        }
    }
}
